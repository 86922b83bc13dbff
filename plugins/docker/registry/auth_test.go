package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
)

// isolateHome points every credential location at empty temp dirs.
func isolateHome(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_RUNTIME_DIR", filepath.Join(home, "run"))
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("DOCKER_CONFIG", "")
	t.Setenv("REGISTRY_AUTH_FILE", "")
	return home
}

// credHelper puts docker-credential-NAME on PATH: it knows the test
// registry's credentials for addr and nothing else.
func credHelper(t *testing.T, name, addr string) {
	t.Helper()
	bin := t.TempDir()
	helper := "#!/bin/sh\n" +
		"read server\n" +
		"if [ \"$1\" = get ] && [ \"$server\" = \"" + addr + "\" ]; then\n" +
		"  echo '{\"ServerURL\":\"'$server'\",\"Username\":\"" + registrytest.Username + "\",\"Secret\":\"" + registrytest.Password + "\"}'\n" +
		"  exit 0\nfi\n" +
		"echo 'credentials not found in native keychain'\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-"+name), []byte(helper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func writeAuthFile(t *testing.T, path string, v any) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func basicEntry(user, pass string) map[string]string {
	return map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}
}

// TestCredentialSources resolves credentials from every source skopeo reads
// and names the source (never the secret) when the registry refuses them.
func TestCredentialSources(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []registrytest.Auth{registrytest.AuthBasic, registrytest.AuthToken} {
		t.Run(mode.String(), func(t *testing.T) {
			reg := registrytest.Start(t, registrytest.Options{Auth: mode})
			reg.Seed("src/app", "v1", 1, 10)
			reg.Seed("other/app", "v1", 1, 10)
			p := testPlugin()
			noCreds := map[string]string{"creds": ""}
			home := isolateHome(t)

			// Nothing anywhere: anonymous, refused, and the error lists the
			// files searched.
			_, err := openReader(t, p, reg, "src/app", noCreds).Resolve(ctx, "v1")
			mustIs(t, err, core.ErrUnauthorized)
			if !strings.Contains(err.Error(), "credentials: anonymous (no entry for "+reg.Addr) || !strings.Contains(err.Error(), filepath.Join(home, ".docker", "config.json")) {
				t.Fatalf("anonymous error: %v", err)
			}

			// --creds with a wrong password.
			_, err = openReader(t, p, reg, "src/app", map[string]string{"creds": registrytest.Username + ":wrong-secret"}).Resolve(ctx, "v1")
			mustIs(t, err, core.ErrUnauthorized)
			if !strings.Contains(err.Error(), "credentials: creds option for user stevedore") || strings.Contains(err.Error(), "wrong-secret") {
				t.Fatalf("creds error: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}

			// authfile option: the most specific namespace wins.
			af := filepath.Join(t.TempDir(), "auth.json")
			writeAuthFile(t, af, map[string]any{"auths": map[string]any{
				reg.Addr + "/src/app": basicEntry(registrytest.Username, registrytest.Password),
				reg.Addr:              basicEntry(registrytest.Username, "bad-host-pass"),
			}})
			if _, err := openReader(t, p, reg, "src/app", map[string]string{"creds": "", "authfile": af}).Resolve(ctx, "v1"); err != nil {
				t.Fatalf("authfile namespace entry: %v", err)
			}
			_, err = openReader(t, p, reg, "other/app", map[string]string{"creds": "", "authfile": af}).Resolve(ctx, "v1")
			mustIs(t, err, core.ErrUnauthorized)
			if !strings.Contains(err.Error(), "auth file "+af+" (entry "+reg.Addr+")") || strings.Contains(err.Error(), "bad-host-pass") {
				t.Fatalf("authfile error: %v", err)
			}

			good := map[string]any{"auths": map[string]any{reg.Addr: basicEntry(registrytest.Username, registrytest.Password)}}
			// ${XDG_RUNTIME_DIR}/containers/auth.json
			writeAuthFile(t, filepath.Join(home, "run", "containers", "auth.json"), good)
			if _, err := openReader(t, p, reg, "src/app", noCreds).Resolve(ctx, "v1"); err != nil {
				t.Fatalf("XDG_RUNTIME_DIR auth.json: %v", err)
			}
			// $REGISTRY_AUTH_FILE replaces it.
			bad := map[string]any{"auths": map[string]any{reg.Addr: basicEntry(registrytest.Username, "nope")}}
			raf := filepath.Join(t.TempDir(), "raf.json")
			writeAuthFile(t, raf, bad)
			t.Setenv("REGISTRY_AUTH_FILE", raf)
			_, err = openReader(t, p, reg, "src/app", noCreds).Resolve(ctx, "v1")
			if !strings.Contains(fmt.Sprint(err), "auth file "+raf) {
				t.Fatalf("REGISTRY_AUTH_FILE not used first: %v", err)
			}
			t.Setenv("REGISTRY_AUTH_FILE", "")
			os.Remove(filepath.Join(home, "run", "containers", "auth.json"))

			// docker config.json with a credential helper on PATH.
			credHelper(t, "stvtest", reg.Addr)
			dc := filepath.Join(home, ".docker", "config.json")
			writeAuthFile(t, dc, map[string]any{"credHelpers": map[string]string{reg.Addr: "stvtest"}})
			if _, err := openReader(t, p, reg, "src/app", noCreds).Resolve(ctx, "v1"); err != nil {
				t.Fatalf("credHelpers: %v", err)
			}
			writeAuthFile(t, dc, map[string]any{"credsStore": "stvtest", "auths": map[string]any{reg.Addr: map[string]string{}}})
			r := openReader(t, p, reg, "src/app", noCreds)
			if _, err := r.Resolve(ctx, "v1"); err != nil {
				t.Fatalf("credsStore: %v", err)
			}
			if got := r.creds.describe(); got != "credential helper docker-credential-stvtest (credsStore in "+dc+")" {
				t.Fatalf("source %q", got)
			}
		})
	}
}

// TestRedirectDropsAuthorization sends a blob GET to another host by a 307
// (as registries do to their storage): the other host never sees the
// credentials.
func TestRedirectDropsAuthorization(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthBasic})
	img := reg.Seed("r", "v1", 1, 20_000)
	layer := img.Layers[0]
	var sawAuth []string
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawAuth = append(sawAuth, r.Header.Get("Authorization"))
		w.Write(img.Blobs[layer.Digest])
	}))
	defer storage.Close()
	isolateHome(t)
	src := openReader(t, testPlugin(), reg, "r", nil)
	if _, err := src.Resolve(ctx, "v1"); err != nil { // the client now knows it needs basic auth
		t.Fatal(err)
	}
	reg.AddFault(registrytest.Fault{Kind: registrytest.Respond, Match: registrytest.MatchBlobGet(layer.Digest), Times: 1,
		Status: http.StatusTemporaryRedirect, Header: http.Header{"Location": {storage.URL + "/bucket/blob?sig=x"}}})
	if _, err := readBlob(ctx, src, layer); err != nil {
		t.Fatal(err)
	}
	if len(sawAuth) != 1 || sawAuth[0] != "" {
		t.Fatalf("storage saw Authorization %q", sawAuth)
	}
	for _, r := range reg.Requests() {
		if r.IsBlobGet() && r.Header.Get("Authorization") == "" {
			t.Fatal("the registry's own blob GET carried no credentials: the test proves nothing")
		}
	}
}

// Login stores host names in lower case; a reference may spell the host in
// any case and still finds its entry.
func TestCredentialLookupIgnoresHostCase(t *testing.T) {
	af := filepath.Join(t.TempDir(), "auth.json")
	writeAuthFile(t, af, map[string]any{"auths": map[string]any{"localhost:5000": basicEntry("u", "p")}})
	cred, how, err := lookupFile(context.Background(), af, "LocalHost:5000", "app")
	if err != nil || cred.Username != "u" || cred.Password != "p" || !strings.Contains(how, "entry localhost:5000") {
		t.Fatalf("LocalHost:5000: %+v %q %v", cred, how, err)
	}
}

// An auth file that cannot be read fails the step with the file named, once:
// the error used to carry oras-go's `HEAD "URL": failed to resolve
// credential:` in the middle, the URL repeating the step's tag or digest.
func TestBrokenAuthFileError(t *testing.T) {
	isolateHome(t)
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthBasic})
	reg.Seed("src/app", "v1", 1, 10)
	af := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(af, []byte("{bad"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := openReader(t, testPlugin(), reg, "src/app", map[string]string{"creds": "", "authfile": af}).Resolve(context.Background(), "v1")
	mustIs(t, err, core.ErrInvalid)
	msg := err.Error()
	if !strings.Contains(msg, "resolve v1: looking up credentials: auth file "+af+" is not valid JSON") || strings.Contains(msg, "http") || strings.Contains(msg, "\n") {
		t.Fatalf("error %q, want one line naming the step and the auth file, without the request", msg)
	}
}

// An --authfile that does not exist is said to be missing when the registry
// asks for a login: "no entry for R in FILE" sent users looking in the file.
func TestMissingAuthFileNamed(t *testing.T) {
	isolateHome(t)
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthBasic})
	reg.Seed("src/app", "v1", 1, 10)
	af := filepath.Join(t.TempDir(), "missing.json")
	_, err := openReader(t, testPlugin(), reg, "src/app", map[string]string{"creds": "", "authfile": af}).Resolve(context.Background(), "v1")
	mustIs(t, err, core.ErrUnauthorized)
	if !strings.Contains(err.Error(), af+" (which does not exist)") {
		t.Fatalf("error %q, want it to say %s does not exist", err, af)
	}
}
