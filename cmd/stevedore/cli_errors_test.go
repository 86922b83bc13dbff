package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Conflicting platform flags are refused before anything is opened, and the
// error names the flags the user typed.
func TestCopyPlatformFlagConflicts(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		// Both used to be taken, making an index of the two platforms.
		{[]string{"--override-arch", "arm64", "--platform", "linux/amd64"}, "--override-arch and --platform exclude each other"},
		{[]string{"--platform", "linux/amd64", "--override-os", "windows"}, "--override-os and --platform exclude each other"},
		{[]string{"--all", "--platform", "linux/amd64"}, "--all and --platform exclude each other"},
		{[]string{"--all", "--override-arch", "arm64"}, "--all and --override-arch exclude each other"},
		{[]string{"--multi-arch", "all", "--override-arch", "arm64"}, "--multi-arch all and --override-arch exclude each other"},
	} {
		root := newRootCmd()
		root.SetArgs(append(append([]string{"copy"}, tc.args...), "oci:/nonexistent/src:v1", "oci:/nonexistent/dst:v1"))
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("copy %v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}

// sync took --override-arch and --platform together as two platforms too.
func TestSyncPlatformFlagConflicts(t *testing.T) {
	root := newRootCmd()
	root.SetArgs([]string{"sync", "--override-arch", "arm64", "--platform", "linux/amd64", "oci:/nonexistent/src", "oci:/nonexistent/dst"})
	err := root.Execute()
	if want := "--override-os/--override-arch and --platform exclude each other"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("sync: %v, want an error saying %q", err, want)
	}
}

// A failed sync whose --report cannot be written either gives both errors on
// one line, each readable: they were joined by a bare space ("not found
// --report: ...").
func TestSyncReportErrorJoined(t *testing.T) {
	needPlugin(t, "oci")
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, err := runCLI(t, "sync", "--report", filepath.Join(notDir, "r.json"), "oci:"+filepath.Join(dir, "missing"), "oci:"+filepath.Join(dir, "dst"))
	if err == nil {
		t.Fatal("sync of a missing layout succeeded")
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	last := lines[len(lines)-1]
	if !strings.Contains(last, "not found; --report: ") {
		t.Fatalf("last line %q, want the sync error and the report's joined by \"; \"", last)
	}
}

// --creds with an empty user name is refused naming the flag, never the
// password; the transport used to say only "option creds must be
// USER:PASSWORD" of a value that had that form.
func TestCredsEmptyUser(t *testing.T) {
	for _, flag := range []string{"--creds", "--src-creds", "--dest-creds"} {
		root := newRootCmd()
		root.SetArgs([]string{"copy", flag, ":hunter2", "docker://127.0.0.1:1/a:v1", "oci:/nonexistent/dst:v1"})
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), flag+" gives an empty user name") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("copy %s :hunter2: %v", flag, err)
		}
	}
}

// Negative counts were taken silently (--newest -2 as no limit, --jobs -3 as
// the default) where a sync file's same keys are errors.
func TestNegativeCountsRefused(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"copy", "--jobs", "-3", "oci:/nonexistent/a:v1", "oci:/nonexistent/b:v1"}, "--jobs -3: want 1 or more"},
		{[]string{"copy", "--retry-times", "-1", "oci:/nonexistent/a:v1", "oci:/nonexistent/b:v1"}, "--retry-times -1: want 0 or more"},
		{[]string{"sync", "--newest", "-2", "oci:/nonexistent/a", "oci:/nonexistent/b"}, "--newest -2: want 0 or more"},
		{[]string{"sync", "--parallel", "0", "oci:/nonexistent/a", "oci:/nonexistent/b"}, "--parallel 0: want 1 or more"},
		{[]string{"sync", "--registry-rate", "-1.5", "oci:/nonexistent/a", "oci:/nonexistent/b"}, "--registry-rate -1.5: want 0 or more"},
	} {
		root := newRootCmd()
		root.SetArgs(tc.args)
		if err := root.Execute(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}

// login without a terminal: an input that ends is a one-line error saying
// which flag to give, with no prompt on stderr before it ("Username:
// stevedore: read username: EOF"); an empty --password-stdin is refused
// rather than prompted for again; a user name with ':' cannot be saved.
func TestLoginInputErrors(t *testing.T) {
	af := filepath.Join(t.TempDir(), "auth.json")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"127.0.0.1:1"}, "no user name: give --username"},
		{[]string{"-u", "alice", "127.0.0.1:1"}, "no password: give --password-stdin or --password"},
		{[]string{"-u", "alice", "--password-stdin", "127.0.0.1:1"}, "--password-stdin: the standard input held no password"},
		{[]string{"-u", "al:ice", "-p", "x", "127.0.0.1:1"}, `user name "al:ice" contains ':'`},
	} {
		root := newRootCmd()
		var stderr strings.Builder
		root.SetIn(strings.NewReader(""))
		root.SetErr(&stderr)
		root.SetArgs(append([]string{"login", "--authfile", af}, tc.args...))
		err := root.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) || stderr.Len() != 0 {
			t.Errorf("login %v: %v (stderr %q), want an error saying %q and nothing on stderr", tc.args, err, stderr.String(), tc.want)
		}
	}
	if _, err := os.Stat(af); !os.IsNotExist(err) {
		t.Errorf("a failed login wrote %s", af)
	}
}

// logout --all with a registry said `unknown command "REGISTRY"`.
func TestLogoutAllWithRegistry(t *testing.T) {
	root := newRootCmd()
	root.SetArgs([]string{"logout", "--authfile", filepath.Join(t.TempDir(), "auth.json"), "--all", "127.0.0.1:1"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "give no REGISTRY (127.0.0.1:1)") {
		t.Errorf("logout --all REGISTRY: %v", err)
	}
}

// serve refuses settings it would replace or ignore: an empty token key
// file gave a random key (tokens died with the process), --upload-ttl -1s
// became an hour, --token-key-file without --token did nothing.
func TestServeRefusesIgnoredSettings(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.key")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	htp := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htp, []byte("alice:$2y$05$0000000000000000000000000000000000000000000000000000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--token-key-file", empty}, "--token-key-file is for the token endpoint"},
		{[]string{"--htpasswd", htp, "--token", "--token-key-file", empty}, "token key " + empty + ": 0 bytes"},
		{[]string{"--upload-ttl", "-1s"}, "--upload-ttl -1s: want a positive duration"},
		{[]string{"--htpasswd", htp, "--token", "--token-ttl", "0s"}, "--token-ttl 0s: want a positive duration"},
		{[]string{"--max-upload-size", "-1"}, "--max-upload-size -1"},
	} {
		root := newRootCmd()
		root.SetArgs(append([]string{"serve", "--root", filepath.Join(dir, "root"), "--addr", "127.0.0.1:0"}, tc.args...))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := root.ExecuteContext(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("serve %v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}

// gc --upload-ttl 0 was taken as the 24h default.
func TestGCRefusesNonPositiveUploadTTL(t *testing.T) {
	root := newRootCmd()
	root.SetArgs([]string{"gc", "--root", t.TempDir(), "--upload-ttl", "0s"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "--upload-ttl 0s: want a positive duration") {
		t.Errorf("gc --upload-ttl 0s: %v", err)
	}
}

// A boolean flag given its value after a space (skopeo users type
// --dest-tls-verify false) made the value an argument, and the error said
// only "accepts 2 arg(s), received 3".
func TestBoolFlagValueAfterSpace(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"copy", "--dest-tls-verify", "false", "oci:/nonexistent/a:v1", "oci:/nonexistent/b:v1"}, "(--dest-tls-verify=false)"},
		{[]string{"inspect", "--tls-verify", "false", "docker://127.0.0.1:1/a:v1"}, "(--tls-verify=false)"},
		{[]string{"copy", "--all", "--src-tls-verify", "false", "oci:/nonexistent/a:v1", "oci:/nonexistent/b:v1"}, "(--FLAG=false)"},
	} {
		root := newRootCmd()
		root.SetArgs(tc.args)
		if err := root.Execute(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
	root := newRootCmd()
	root.SetArgs([]string{"copy", "a", "b", "c"})
	if err := root.Execute(); err == nil || strings.Contains(err.Error(), "boolean") {
		t.Errorf("copy a b c: %v", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// The line a script captures (manifest-digest's, copy's digest) failing to
// be written fails the command: it exited 0 with the result lost.
func TestResultWriteFailureFails(t *testing.T) {
	m := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(m, []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	root := newRootCmd()
	root.SetOut(failingWriter{})
	root.SetArgs([]string{"manifest-digest", m})
	if err := root.Execute(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("manifest-digest to a full stdout: %v", err)
	}
}

// Two ways to authenticate to one registry are refused naming the flags; the
// transport named its options ("option no-creds conflicts with creds and
// registry-token", also when only --creds was given).
func TestCredsFlagsExclusive(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"copy", "--src-creds", "a:b", "--src-no-creds", "docker://127.0.0.1:1/a:v1", "oci:/nonexistent/b:v1"}, "--src-creds and --src-no-creds exclude each other"},
		{[]string{"copy", "--dest-creds", "a:b", "--dest-registry-token", "t", "oci:/nonexistent/a:v1", "docker://127.0.0.1:1/b:v1"}, "--dest-creds and --dest-registry-token exclude each other"},
		{[]string{"inspect", "--creds", "a:b", "--no-creds", "docker://127.0.0.1:1/a:v1"}, "--creds and --no-creds exclude each other"},
	} {
		root := newRootCmd()
		root.SetArgs(tc.args)
		if err := root.Execute(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
	// --creds for both sides with one side's own way is not a conflict.
	root := newRootCmd()
	root.SetArgs([]string{"copy", "--creds", "a:b", "--src-no-creds", "--jobs", "-1", "docker://127.0.0.1:1/a:v1", "oci:/nonexistent/b:v1"})
	if err := root.Execute(); err == nil || strings.Contains(err.Error(), "exclude each other") {
		t.Errorf("--creds with --src-no-creds: %v", err)
	}
}

// static-config given an endpoint (static:DIR) said to copy an image to
// "static:static:DIR:NAME:TAG".
func TestStaticConfigWantsDirectory(t *testing.T) {
	root := newRootCmd()
	root.SetArgs([]string{"static-config", "--nginx", "static:/srv/tree"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "give /srv/tree") {
		t.Errorf("static-config static:/srv/tree: %v", err)
	}
}
