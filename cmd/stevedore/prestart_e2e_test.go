package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stevedore-oci/stevedore/host"
)

// The plugins a command line names start while the CLI initialises
// (cmd/stevedore/internal/early), and the host uses them: nothing in the
// environment the CLI builds for its plugins differs from what the host
// gives go-plugin (a variable added on one side only would make every
// command start its plugins twice, which only this test would notice).
func TestPluginStartedAheadIsUsed(t *testing.T) {
	dir := installDir(t, builtin(t, "oci"))
	work := t.TempDir()
	genImage(t, filepath.Join(work, "l"), "v1", 1, 1000)
	const used = "using the plugin process started ahead"
	r := runFrom(t, dir, nil, "--debug", "inspect", "oci:"+work+"/l:v1")
	if r.err != nil || !strings.Contains(r.stderr, used) {
		t.Fatalf("inspect: %v; stderr lacks %q:\n%s", r.err, used, r.stderr)
	}
	r = runFrom(t, dir, []string{"STEVEDORE_PRESTART=off"}, "--debug", "inspect", "oci:"+work+"/l:v1")
	if r.err != nil || strings.Contains(r.stderr, "started ahead") {
		t.Fatalf("inspect with STEVEDORE_PRESTART=off: %v\n%s", r.err, r.stderr)
	}
	assertNoPluginProcesses(t)
}

// markerPlugin installs, under the oci plugin's name, a script that touches
// a file when it runs and then waits in a child (sleep 8761).
func markerPlugin(t *testing.T) (dir, marker string) {
	t.Helper()
	dir = installDir(t)
	marker = filepath.Join(t.TempDir(), "ran")
	script := "#!/bin/sh\n: >" + marker + "\necho not a handshake\nsleep 8761\n"
	if err := os.WriteFile(filepath.Join(dir, host.BinaryPrefix+"oci"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, marker
}

// waitNoSleeper waits for the script's child to be gone.
func waitNoSleeper(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cmds, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		found := ""
		for _, c := range cmds {
			if b, _ := os.ReadFile(c); string(b) == "sleep\x008761\x00" {
				found = c
			}
		}
		if found == "" {
			return
		}
		if time.Now().After(deadline) {
			exec.Command("pkill", "-f", "sleep 8761").Run()
			t.Fatalf("the plugin's child is still running (%s)", found)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// With a pin file in effect, nothing runs before the host has hashed it: a
// binary the pins refuse never runs, not even started ahead.
func TestNothingStartedAheadOfPins(t *testing.T) {
	dir, marker := markerPlugin(t)
	config := t.TempDir()
	os.MkdirAll(filepath.Join(config, "stevedore"), 0o755)
	lock := strings.Repeat("0", 64) + "  oci\n"
	if err := os.WriteFile(filepath.Join(config, "stevedore", "plugins.lock"), []byte(lock), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runFrom(t, dir, []string{"XDG_CONFIG_HOME=" + config}, "inspect", "oci:/nowhere:v1")
	wantOneLineError(t, r, "does not match the pinned")
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the pinned-out binary ran")
	}
	r = runFrom(t, dir, nil, "--plugin-lock", filepath.Join(config, "stevedore", "plugins.lock"), "inspect", "oci:/nowhere:v1")
	wantOneLineError(t, r, "does not match the pinned")
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the pinned-out binary ran (--plugin-lock)")
	}
	// Without pins the same command line runs it: the marker works.
	r = runFrom(t, dir, nil, "inspect", "oci:/nowhere:v1")
	if r.err == nil {
		t.Fatal("inspect through a script that is no plugin succeeded")
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("the script did not run without pins:", err)
	}
	waitNoSleeper(t)
}

// A command that fails before it needs its plugins (here, a missing
// argument) stops what it started ahead, what that started, and removes
// the socket directory.
func TestPluginStartedAheadStoppedWhenUnused(t *testing.T) {
	dir, marker := markerPlugin(t)
	tmp := t.TempDir()
	r := runFrom(t, dir, []string{"TMPDIR=" + tmp}, "copy", "oci:/nowhere:v1")
	if r.err == nil {
		t.Fatal("copy with one argument succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, err := os.Stat(marker); err != nil; _, err = os.Stat(marker) {
		// The script may be killed before it runs touch: then it never
		// ran, which proves nothing. It normally runs within milliseconds.
		if time.Now().After(deadline) {
			t.Skip("the script started ahead was killed before it ran")
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitNoSleeper(t)
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("left in $TMPDIR: %v", left)
	}
}

// The package that starts the plugins initialises before the heavy ones
// (protobuf descriptors, semver and reference grammars, go-plugin, oras):
// an import added to it or to host/prestart that is initialised late would
// quietly delay every plugin start.
func TestPrestartInitialisesFirst(t *testing.T) {
	cmd := exec.Command(filepath.Join(binDir, "stevedore"), "--help")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("stevedore --help: %v\n%s", err, out)
	}
	order := map[string]int{}
	n := 0
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "init" {
			order[f[1]] = n
			n++
		}
	}
	early, ok := order["github.com/stevedore-oci/stevedore/cmd/stevedore/internal/early"]
	if !ok {
		t.Fatalf("no init trace of the early package:\n%s", out)
	}
	for _, heavy := range []string{
		"google.golang.org/protobuf/reflect/protodesc",
		"github.com/Masterminds/semver/v3",
		"github.com/distribution/reference",
		"github.com/hashicorp/go-plugin/internal/plugin",
		"oras.land/oras-go/v2/registry",
	} {
		i, ok := order[heavy]
		if !ok {
			t.Errorf("no init trace of %s (renamed? update this test)", heavy)
			continue
		}
		if i < early {
			t.Errorf("%s initialises before the early package (%d < %d)", heavy, i, early)
		}
	}
}
