package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
)

func TestNormalizeRegistry(t *testing.T) {
	for _, tc := range []struct{ in, key, host string }{
		{"docker.io", "docker.io", "registry-1.docker.io"},
		{"https://index.docker.io/v1/", "docker.io", "registry-1.docker.io"},
		{"index.docker.io", "docker.io", "registry-1.docker.io"},
		{"Quay.io", "quay.io", "quay.io"},
		{"quay.io/team/", "quay.io/team", "quay.io"},
		{"https://r.example.com:5000/v2/", "r.example.com:5000", "r.example.com:5000"},
		{"127.0.0.1:5000", "127.0.0.1:5000", "127.0.0.1:5000"},
		{"docker://127.0.0.1:5000", "127.0.0.1:5000", "127.0.0.1:5000"}, // skopeo's transport prefix
		{"docker://Quay.io/team", "quay.io/team", "quay.io"},
	} {
		key, host, err := NormalizeRegistry(tc.in)
		if err != nil || key != tc.key || host != tc.host {
			t.Errorf("%q: %q %q %v; want %q %q", tc.in, key, host, err, tc.key, tc.host)
		}
	}
	for _, bad := range []string{"", "user@host", "/x"} {
		if _, _, err := NormalizeRegistry(bad); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%q accepted: %v", bad, err)
		}
	}
}

func TestStoreLookupRemove(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "auth.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	// A docker config with unrelated settings and a legacy Hub key.
	os.WriteFile(path, []byte(`{"auths":{"https://index.docker.io/v1/":{"auth":"b2xkOm9sZA=="},"other.io":{"auth":"dTpw"}},"psFormat":"table {{.ID}}"}`), 0o644)
	if err := Store(ctx, path, "docker.io", Credential{Username: "me", Password: "pw:with:colons"}); err != nil {
		t.Fatal(err)
	}
	c, ok, err := Lookup(ctx, path, "docker.io")
	if err != nil || !ok || c.Username != "me" || c.Password != "pw:with:colons" {
		t.Fatalf("lookup: %+v %v %v", c, ok, err)
	}
	var raw map[string]json.RawMessage
	b, _ := os.ReadFile(path)
	json.Unmarshal(b, &raw)
	if string(raw["psFormat"]) != `"table {{.ID}}"` {
		t.Fatalf("unknown field lost: %s", b)
	}
	if strings.Contains(string(b), "index.docker.io") {
		t.Fatalf("legacy Hub key kept next to the new one: %s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	if removed, err := Remove(ctx, path, "docker.io"); err != nil || !removed {
		t.Fatalf("remove: %v %v", removed, err)
	}
	if _, ok, _ := Lookup(ctx, path, "docker.io"); ok {
		t.Fatal("still there after Remove")
	}
	if _, ok, _ := Lookup(ctx, path, "other.io"); !ok {
		t.Fatal("Remove dropped another registry")
	}
	if _, err := Logout(ctx, "docker.io", path); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("logout when logged out: %v", err)
	}
	keys, err := RemoveAll(path)
	if err != nil || len(keys) != 1 || keys[0] != "other.io" {
		t.Fatalf("remove all: %v %v", keys, err)
	}
}

// TestCredentialHelper stores through the credsStore a file names.
func TestCredentialHelper(t *testing.T) {
	ctx := context.Background()
	bin := t.TempDir()
	state := filepath.Join(bin, "state")
	// A helper that keeps one secret in a file.
	script := "#!/bin/sh\nstate=" + state + "\ncase \"$1\" in\n" +
		"store) cat > $state ;;\n" +
		"get) read s; if [ -f $state ]; then cat $state; else echo 'credentials not found in native keychain'; exit 1; fi ;;\n" +
		"erase) read s; rm -f $state ;;\nesac\n"
	os.WriteFile(filepath.Join(bin, "docker-credential-stvfile"), []byte(script), 0o755)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	path := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(path, []byte(`{"credsStore":"stvfile"}`), 0o600)

	if err := Store(ctx, path, "r.example.com", Credential{Username: "u", Password: "secret"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); strings.Contains(string(b), "secret") || strings.Contains(string(b), "dTpzZWNyZXQ") {
		t.Fatalf("secret written to the file despite credsStore: %s", b)
	}
	if b, _ := os.ReadFile(state); !strings.Contains(string(b), `"Secret":"secret"`) {
		t.Fatalf("helper did not get the secret: %s", b)
	}
	if c, ok, err := Lookup(ctx, path, "r.example.com"); err != nil || !ok || c.Password != "secret" {
		t.Fatalf("lookup via helper: %+v %v %v", c, ok, err)
	}
	if _, err := Logout(ctx, "r.example.com", path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Fatal("helper erase not called")
	}
}

func TestLogin(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts registrytest.Options
	}{
		{"basic-tls", registrytest.Options{TLS: true, Auth: registrytest.AuthBasic}},
		{"token-http", registrytest.Options{Auth: registrytest.AuthToken}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := registrytest.Start(t, tc.opts)
			path := filepath.Join(t.TempDir(), "auth.json")
			o := LoginOptions{Registry: reg.Addr, AuthFile: path, CertDir: reg.CertDir, Insecure: !tc.opts.TLS,
				Credential: Credential{Username: reg.Username, Password: "wrong"}}
			_, err := Login(ctx, o)
			if !errors.Is(err, core.ErrUnauthorized) || strings.Contains(err.Error(), "wrong") {
				t.Fatalf("bad password: %v", err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatal("refused credentials were saved")
			}
			o.Password = reg.Password
			got, err := Login(ctx, o)
			if err != nil || got != path {
				t.Fatalf("login: %s %v", got, err)
			}
			c, ok, err := Lookup(ctx, path, reg.Addr)
			if err != nil || !ok || c.Password != reg.Password {
				t.Fatalf("saved: %+v %v %v", c, ok, err)
			}
			if tc.opts.TLS {
				// Without the CA, verification fails with a hint.
				o.CertDir = t.TempDir()
				if _, err := Login(ctx, o); err == nil || !strings.Contains(err.Error(), "not trusted") {
					t.Fatalf("untrusted: %v", err)
				}
			}
		})
	}
}

// TestSkopeoReadsLogin: skopeo uses the file login wrote, and login's
// reader understands a file skopeo login wrote.
func TestSkopeoReadsLogin(t *testing.T) {
	bin, err := exec.LookPath("skopeo")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("skopeo is required in CI: %v", err)
		}
		t.Skipf("skopeo not installed: %v", err)
	}
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthBasic})
	reg.Seed("a/b", "v1", 1, 100)
	path := filepath.Join(t.TempDir(), "auth.json")
	if _, err := Login(ctx, LoginOptions{Registry: reg.Addr, AuthFile: path, Insecure: true, Credential: Credential{Username: reg.Username, Password: reg.Password}}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "inspect", "--raw", "--tls-verify=false", "--authfile", path, "docker://"+reg.Ref("a/b:v1")).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo with our auth file: %v: %s", err, out)
	}
	other := filepath.Join(t.TempDir(), "skopeo.json")
	out, err = exec.Command(bin, "login", "--tls-verify=false", "--authfile", other, "-u", reg.Username, "-p", reg.Password, reg.Addr).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo login: %v: %s", err, out)
	}
	if c, ok, err := Lookup(ctx, other, reg.Addr); err != nil || !ok || c.Username != reg.Username || c.Password != reg.Password {
		t.Fatalf("reading skopeo's file: %+v %v %v", c, ok, err)
	}
}

// A plain-HTTP server that is no registry is named with the scheme that
// answered: the error said https:// of a server reached over http://.
func TestLoginNoRegistryAPINamesScheme(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	_, err := Login(context.Background(), LoginOptions{Registry: host, AuthFile: filepath.Join(t.TempDir(), "auth.json"), Insecure: true,
		Credential: Credential{Username: "u", Password: "p"}})
	if !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), "no registry API at http://"+host+"/v2/") {
		t.Fatalf("login to a web server: %v", err)
	}
}
