package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/server"
)

func htpasswd(t *testing.T, users ...string) string {
	t.Helper()
	var b strings.Builder
	for _, u := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(u+"-pw"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	p := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func basic(u string) []string {
	req, _ := http.NewRequest("GET", "http://x", nil)
	req.SetBasicAuth(u, u+"-pw")
	return []string{"Authorization", req.Header.Get("Authorization")}
}

func TestAnonymousWritesRefusedWithoutAuth(t *testing.T) {
	ts, _ := testServer(t, server.Options{}) // what Run uses on a non-loopback address
	b := newBlob("", randomBytes(10))
	st, _, body := do(t, "POST", ts.URL+"/v2/r/blobs/uploads/?digest="+b.desc.Digest.String(), b.data)
	if st != http.StatusForbidden || errCode(body) != "DENIED" {
		t.Fatalf("anonymous push: %d %s", st, body)
	}
	if st, _, _ := do(t, "DELETE", ts.URL+"/v2/r/manifests/latest", nil); st != http.StatusForbidden {
		t.Fatalf("anonymous delete: %d", st)
	}
	if st, _, _ := do(t, "GET", ts.URL+"/v2/", nil); st != 200 {
		t.Fatalf("anonymous ping: %d", st)
	}
}

func TestBasicAuthAndPolicy(t *testing.T) {
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pol, []byte(`rules:
  - users: [alice]
    repositories: ["team/*"]
    actions: [pull, push, delete]
  - users: ["*"]
    repositories: ["*"]
    actions: [pull]
  - users: [anonymous]
    repositories: ["public/*"]
    actions: [pull]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	ts, _ := testServer(t, server.Options{HtpasswdFile: htpasswd(t, "alice", "bob"), PolicyFile: pol})
	im := randomImage(t, "amd64", 1)
	pushImage(t, ts.URL, "team/app", "v1", im, basic("alice")...)
	url := ts.URL + "/v2/team/app/manifests/v1"
	if st, _, _ := do(t, "GET", url, nil, basic("bob")...); st != 200 {
		t.Errorf("bob pull: %d", st)
	}
	st, _, body := do(t, "PUT", ts.URL+"/v2/team/app/manifests/v2", im.manifest.data, append(basic("bob"), "Content-Type", im.manifest.desc.MediaType)...)
	if st != http.StatusForbidden || errCode(body) != "DENIED" {
		t.Errorf("bob push: %d %s", st, body)
	}
	st, h, body := do(t, "GET", url, nil)
	if st != http.StatusUnauthorized || errCode(body) != "UNAUTHORIZED" || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("anonymous pull of team/app: %d %v %s", st, h, body)
	}
	if st, _, _ := do(t, "GET", url, nil, "Authorization", "Basic YWxpY2U6d3Jvbmc="); st != http.StatusUnauthorized {
		t.Errorf("wrong password: %d", st)
	}
	if st, _, _ := do(t, "POST", ts.URL+"/v2/public/app/blobs/uploads/", nil, basic("alice")...); st != http.StatusForbidden {
		t.Errorf("alice push outside team/*: %d", st)
	}
	// The ping challenges anonymous although anonymous may pull public/*:
	// containers/image sends its credentials only after a challenge.
	// Anonymous still pulls there.
	if st, h, _ := do(t, "GET", ts.URL+"/v2/", nil); st != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("anonymous ping: %d %v", st, h)
	}
	if st, _, body := do(t, "GET", ts.URL+"/v2/public/app/tags/list", nil); st != http.StatusNotFound {
		t.Errorf("anonymous tag list of public/app (nothing there): %d %s", st, body)
	}
	// Catalog shows only what the caller may pull.
	pushBlob(t, ts.URL, "team/other", im.config, basic("alice")...)
	st, _, body = do(t, "GET", ts.URL+"/v2/_catalog", nil, basic("bob")...)
	if st != 200 || !contains(string(body), "team/app") {
		t.Errorf("bob catalog: %d %s", st, body)
	}
}

func TestTokenFlow(t *testing.T) {
	ts, _ := testServer(t, server.Options{HtpasswdFile: htpasswd(t, "alice"), Token: true, TokenTTL: time.Minute})
	st, h, _ := do(t, "POST", ts.URL+"/v2/app/blobs/uploads/", nil)
	ch := h.Get("WWW-Authenticate")
	if st != http.StatusUnauthorized || !strings.HasPrefix(ch, `Bearer realm="`+ts.URL+`/token"`) || !contains(ch, `scope="repository:app:pull,push"`) {
		t.Fatalf("challenge: %d %q", st, ch)
	}
	token := func(scope string, cred ...string) string {
		st, _, body := do(t, "GET", ts.URL+"/token?service=stevedore&scope="+scope, nil, cred...)
		if st != 200 {
			t.Fatalf("token: %d %s", st, body)
		}
		var r struct {
			Token string `json:"token"`
		}
		if err := json.Unmarshal(body, &r); err != nil || r.Token == "" {
			t.Fatalf("token body %s", body)
		}
		return r.Token
	}
	if st, _, _ := do(t, "GET", ts.URL+"/token?scope=repository:app:push", nil, "Authorization", "Basic YWxpY2U6d3Jvbmc="); st != http.StatusUnauthorized {
		t.Fatalf("token with a wrong password: %d", st)
	}
	push := token("repository:app:pull,push", basic("alice")...)
	b := newBlob("", randomBytes(100))
	pushBlob(t, ts.URL, "app", b, "Authorization", "Bearer "+push)
	// The token is scoped to app.
	if st, _, _ := do(t, "POST", ts.URL+"/v2/other/blobs/uploads/", nil, "Authorization", "Bearer "+push); st != http.StatusUnauthorized {
		t.Errorf("token used on another repository: %d", st)
	}
	// A pull-only token cannot push; an anonymous token grants nothing.
	pull := token("repository:app:pull", basic("alice")...)
	if st, _, _ := do(t, "POST", ts.URL+"/v2/app/blobs/uploads/", nil, "Authorization", "Bearer "+pull); st != http.StatusUnauthorized {
		t.Errorf("pull token pushing: %d", st)
	}
	anon := token("repository:app:pull")
	if st, _, _ := do(t, "HEAD", ts.URL+"/v2/app/blobs/"+b.desc.Digest.String(), nil, "Authorization", "Bearer "+anon); st != http.StatusUnauthorized {
		t.Errorf("anonymous token pulling: %d", st)
	}
	// Tampering breaks the signature.
	parts := strings.Split(pull, ".")
	forged := parts[0] + "." + strings.TrimRight(parts[1], "=") + "x." + parts[2]
	if st, _, _ := do(t, "HEAD", ts.URL+"/v2/app/blobs/"+b.desc.Digest.String(), nil, "Authorization", "Bearer "+forged); st != http.StatusUnauthorized {
		t.Errorf("forged token: %d", st)
	}
}

func TestAuthorizeHook(t *testing.T) {
	ts, _ := testServer(t, server.Options{AnonymousWrite: true, Authorize: func(r *http.Request, id server.Identity, repo string, act server.Action) error {
		if act == server.ActionDelete {
			return fmt.Errorf("deletes are off: %w", core.ErrDenied)
		}
		return nil
	}})
	im := randomImage(t, "amd64", 1)
	pushImage(t, ts.URL, "r", "v1", im)
	if st, _, body := do(t, "DELETE", ts.URL+"/v2/r/manifests/v1", nil); st != http.StatusForbidden || errCode(body) != "DENIED" {
		t.Fatalf("hooked delete: %d %s", st, body)
	}
}

// Run serves until its context ends and lets an in-flight request finish.
func TestRunGracefulShutdown(t *testing.T) {
	root := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Options{Root: root}, server.RunOptions{Addr: "127.0.0.1:0", Ready: func(a net.Addr) { addrc <- a }})
	}()
	addr := (<-addrc).String()
	b := newBlob("", randomBytes(1<<20))
	// Anonymous writes are allowed on loopback.
	_, h, _ := do(t, "POST", "http://"+addr+"/v2/r/blobs/uploads/", nil)
	loc := h.Get("Location")
	if loc == "" {
		t.Fatal("no upload session on loopback")
	}
	pr, pw := io.Pipe()
	result := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("PUT", "http://"+addr+loc+"?digest="+b.desc.Digest.String(), pr)
		req.ContentLength = int64(len(b.data))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			result <- -1
			return
		}
		resp.Body.Close()
		result <- resp.StatusCode
	}()
	_, _ = pw.Write(b.data[:1000])
	time.Sleep(100 * time.Millisecond)
	cancel() // SIGTERM equivalent while the PUT is in flight
	time.Sleep(100 * time.Millisecond)
	_, _ = pw.Write(b.data[1000:])
	_ = pw.Close()
	if st := <-result; st != http.StatusCreated {
		t.Fatalf("in-flight request during shutdown: %d", st)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "r/blobs/sha256", b.desc.Digest.Encoded())); err != nil {
		t.Fatalf("blob of the in-flight request: %v", err)
	}
}

// TLS files are checked before listening, each error naming them: a
// certificate without its key was reported after "registry listening" as
// "open : no such file or directory", and a file that is not PEM without
// its name.
func TestRunRefusesBadTLSFilesBeforeListening(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ro   server.RunOptions
		want string
	}{
		{server.RunOptions{TLSCertFile: notPEM}, "--tls-key"},
		{server.RunOptions{TLSKeyFile: notPEM}, "--tls-cert"},
		{server.RunOptions{TLSCertFile: notPEM, TLSKeyFile: notPEM}, "TLS certificate " + notPEM},
	} {
		tc.ro.Addr = "127.0.0.1:0"
		tc.ro.Ready = func(net.Addr) { t.Errorf("%+v: listening before the TLS files were checked", tc.ro) }
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := server.Run(ctx, server.Options{Root: t.TempDir()}, tc.ro)
		cancel()
		if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an invalid error saying %q", tc.ro, err, tc.want)
		}
	}
}

// A policy's unknown keys and empty rules are errors: "user:" for "users:"
// made a rule that granted nothing, and the server started anyway.
func TestLoadPolicyRefusesTypos(t *testing.T) {
	for name, text := range map[string]string{
		"user for users":   "rules:\n  - user: [alice]\n    repositories: ['*']\n    actions: [pull]\n",
		"top-level typo":   "rulez:\n  - users: [alice]\n    repositories: ['*']\n    actions: [pull]\n",
		"rule without any": "rules:\n  - users: [alice]\n    actions: [pull]\n",
	} {
		pol := filepath.Join(t.TempDir(), "policy.yaml")
		if err := os.WriteFile(pol, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := server.LoadPolicy(pol)
		if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), pol) || strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "server.") {
			t.Errorf("%s: %v, want one line naming %s", name, err, pol)
		}
	}
}
