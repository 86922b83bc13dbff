package registrytest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Auth selects how the registry authenticates clients.
type Auth int

const (
	// AuthNone lets anyone pull and push.
	AuthNone Auth = iota
	// AuthBasic requires htpasswd basic auth (Username/Password, or
	// OtherUsername/OtherPassword).
	AuthBasic
	// AuthToken requires bearer tokens from the in-test issuer, which
	// authenticates the same users with basic auth.
	AuthToken
)

func (a Auth) String() string {
	switch a {
	case AuthBasic:
		return "basic"
	case AuthToken:
		return "token"
	}
	return "none"
}

// Credentials the registry accepts in the AuthBasic and AuthToken modes.
const (
	Username      = "stevedore"
	Password      = "s3cret-pass"
	OtherUsername = "other"
	OtherPassword = "other-pass"
)

// bcrypt hashes of Password and OtherPassword (cost 5), made with
// `htpasswd -nbB -C 5`, so the harness needs neither htpasswd nor a bcrypt
// library.
const htpasswdFile = "stevedore:$2y$05$EDfASo2avuJj2mqeN4an1.28Fpgmxm8YQwrIVyPapvJaqvuuDdKWe\n" +
	"other:$2y$05$iNB5NfueQrpWKgtqPSGhv.BBHvQ0p9tKmcCJamK9l5ONpg6OMek6m\n"

// Options configures a test registry.
type Options struct {
	// TLS serves HTTPS with a certificate from a generated CA (see CertDir).
	TLS bool
	// ClientCert (with TLS) makes the proxy require a client certificate
	// signed by the CA; CertDir then also holds client.cert and client.key.
	ClientCert bool
	// Auth selects the authentication mode.
	Auth Auth
	// HTTP2 (with TLS) makes the proxy offer HTTP/2, as docker-registry
	// itself does over TLS. Off by default: fault tests expect HTTP/1.1.
	HTTP2 bool
	// Grant decides the actions a bearer token grants (AuthToken only):
	// user is "" for anonymous requests. nil grants an authenticated user
	// everything requested and an anonymous one nothing.
	Grant func(user, repository string, requested []string) []string
	// TokenMaxAge (AuthToken only) makes the proxy refuse, with the
	// registry's 401 challenge, a bearer token issued longer ago: tokens
	// that expire mid-run, as Docker Hub's do after 300 s (docker-registry's
	// own expiry check allows 60 s of leeway, too long for a test).
	TokenMaxAge time.Duration
}

// Registry is a running docker-registry behind the test proxy.
type Registry struct {
	// Addr is "127.0.0.1:PORT" of the proxy: what clients dial and the host
	// part of image references.
	Addr string
	// Host is the registry name in image references; the same as Addr.
	Host string
	// URL is "http://Addr" or "https://Addr".
	URL string
	// BackendAddr is the registry's own address, bypassing the proxy.
	BackendAddr string
	// TLS and Auth echo the options.
	TLS  bool
	Auth Auth
	// CertDir holds ca.crt (TLS only): pass it as --cert-dir or copy it to
	// certs.d/HOST/. CAFile is the same certificate's path.
	CertDir string
	CAFile  string
	// StorageDir is the registry's filesystem storage root.
	StorageDir string
	// Username and Password are accepted by the AuthBasic and AuthToken modes.
	Username, Password string

	t       testing.TB
	caPool  *x509.CertPool
	proxy   *proxy
	issuer  *issuer
	realm   string // the issuer's token URL
	cmd     *exec.Cmd
	waitErr chan error
	logPath string
	servers []*http.Server
	conns   atomic.Int64
	once    sync.Once

	requireClientCert bool // while starting the proxy
	offerHTTP2        bool // while starting the proxy
}

// binary finds docker-registry, or skips/fails the test.
func binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("STEVEDORE_DOCKER_REGISTRY"); p != "" {
		return p
	}
	p, err := exec.LookPath("docker-registry")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("docker-registry is required in CI (apt-get install docker-registry): %v", err)
	}
	t.Skipf("docker-registry not installed (apt-get install docker-registry); skipping: %v", err)
	return ""
}

// Start runs a registry for the test and stops it in t.Cleanup.
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	bin := binary(t)
	dir := t.TempDir()
	r := &Registry{
		t:          t,
		TLS:        opts.TLS,
		Auth:       opts.Auth,
		StorageDir: filepath.Join(dir, "storage"),
		logPath:    filepath.Join(dir, "registry.log"),
	}
	if opts.Auth != AuthNone {
		r.Username, r.Password = Username, Password
	}
	t.Cleanup(r.Close)
	if err := r.start(bin, dir, opts); err != nil {
		t.Fatalf("registrytest: %v", err)
	}
	return r
}

func (r *Registry) start(bin, dir string, opts Options) error {
	ca, err := newCA("registrytest CA")
	if err != nil {
		return err
	}
	r.caPool = x509.NewCertPool()
	r.caPool.AddCert(ca.cert)
	var serverCert tls.Certificate
	var certPath, keyPath string
	if opts.TLS {
		leaf, err := newLeaf(ca, "registrytest")
		if err != nil {
			return err
		}
		if certPath, keyPath, err = writePair(dir, "server.crt", "server.key", leaf); err != nil {
			return err
		}
		if serverCert, err = leaf.tlsCertificate(); err != nil {
			return err
		}
		r.CertDir = filepath.Join(dir, "certs")
		if err := os.MkdirAll(r.CertDir, 0o755); err != nil {
			return err
		}
		r.CAFile = filepath.Join(r.CertDir, "ca.crt")
		if err := os.WriteFile(r.CAFile, ca.certPEM(), 0o644); err != nil {
			return err
		}
		if opts.ClientCert {
			client, err := newLeaf(ca, "registrytest client")
			if err != nil {
				return err
			}
			if _, _, err := writePair(r.CertDir, "client.cert", "client.key", client); err != nil {
				return err
			}
		}
	}

	cfg := map[string]any{
		"version": 0.1,
		"log": map[string]any{
			"level":     "warn",
			"accesslog": map[string]any{"disabled": true},
		},
		"storage": map[string]any{
			"filesystem":  map[string]any{"rootdirectory": r.StorageDir},
			"delete":      map[string]any{"enabled": true},
			"maintenance": map[string]any{"uploadpurging": map[string]any{"enabled": false}},
			"redirect":    map[string]any{"disable": true},
		},
	}
	secret := make([]byte, 16)
	rand.Read(secret)

	switch opts.Auth {
	case AuthBasic:
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(htpasswdFile), 0o600); err != nil {
			return err
		}
		cfg["auth"] = map[string]any{"htpasswd": map[string]any{"realm": "registrytest", "path": htpasswd}}
	case AuthToken:
		signer, err := newCA("registrytest token signer")
		if err != nil {
			return err
		}
		bundle := filepath.Join(dir, "token-roots.pem")
		if err := os.WriteFile(bundle, signer.certPEM(), 0o644); err != nil {
			return err
		}
		grant := opts.Grant
		if grant == nil {
			grant = defaultGrant
		}
		r.issuer = &issuer{signer: signer, grant: grant, users: map[string]string{Username: Password, OtherUsername: OtherPassword}}
		realm, err := r.serve(r.issuer, opts.TLS, serverCert)
		if err != nil {
			return err
		}
		r.realm = realm + "/token"
		cfg["auth"] = map[string]any{"token": map[string]any{
			"realm":          realm + "/token",
			"service":        tokenService,
			"issuer":         tokenIssuer,
			"rootcertbundle": bundle,
		}}
	}

	// The registry must listen on a port we choose; a port picked by
	// listening on :0 can be taken again before the registry binds it, so
	// retry a few times.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		r.BackendAddr = fmt.Sprintf("127.0.0.1:%d", port)
		httpCfg := map[string]any{
			"addr":   r.BackendAddr,
			"secret": hex.EncodeToString(secret),
		}
		if opts.TLS {
			httpCfg["tls"] = map[string]any{"certificate": certPath, "key": keyPath}
		}
		cfg["http"] = httpCfg
		raw, err := yaml.Marshal(cfg)
		if err != nil {
			return err
		}
		cfgPath := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
			return err
		}
		if lastErr = r.launch(bin, cfgPath); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		return lastErr
	}

	scheme := "http"
	if opts.TLS {
		scheme = "https"
	}
	backendTransport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: r.caPool},
		MaxIdleConnsPerHost: 32,
		DisableCompression:  true,
		WriteBufferSize:     256 << 10,
		ReadBufferSize:      256 << 10,
	}
	r.proxy = &proxy{backend: &url.URL{Scheme: scheme, Host: r.BackendAddr}, transport: backendTransport}
	if opts.Auth == AuthToken && opts.TokenMaxAge > 0 {
		r.proxy.expired = func(req *http.Request) (string, bool) {
			tok, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
			if !ok || time.Since(r.issuer.issuedAt(tok)) <= opts.TokenMaxAge {
				return "", false
			}
			return fmt.Sprintf(`Bearer realm=%q,service=%q,error="invalid_token"`, r.realm, tokenService), true
		}
	}
	r.requireClientCert = opts.TLS && opts.ClientCert
	r.offerHTTP2 = opts.TLS && opts.HTTP2
	front, err := r.serve(r.proxy, opts.TLS, serverCert)
	r.requireClientCert = false
	r.offerHTTP2 = false
	if err != nil {
		return err
	}
	r.URL = front
	r.Addr = strings.TrimPrefix(strings.TrimPrefix(front, "https://"), "http://")
	r.Host = r.Addr
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launch starts docker-registry with cfgPath and waits until it answers.
func (r *Registry) launch(bin, cfgPath string) error {
	logf, err := os.Create(r.logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	// REGISTRY_* variables override the config file: never inherit them.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", bin, err)
	}
	waitErr := make(chan error, 1)
	go func() {
		waitErr <- cmd.Wait()
		logf.Close()
	}()
	r.cmd, r.waitErr = cmd, waitErr

	scheme := "http"
	if r.TLS {
		scheme = "https"
	}
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.caPool}},
	}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-waitErr:
			waitErr <- err
			r.cmd = nil
			return fmt.Errorf("docker-registry exited at start (%v): %s", err, r.logTail())
		default:
		}
		resp, err := client.Get(scheme + "://" + r.BackendAddr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.stopProcess()
	return fmt.Errorf("docker-registry did not answer on %s within 15s: %s", r.BackendAddr, r.logTail())
}

// serve runs h on a new loopback listener and returns its base URL.
func (r *Registry) serve(h http.Handler, useTLS bool, cert tls.Certificate) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				r.conns.Add(1)
			}
		}}
	scheme := "http"
	if useTLS {
		scheme = "https"
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		if r.offerHTTP2 {
			// Serve sets up HTTP/2 on srv and answers connections that
			// negotiated it.
			srv.TLSConfig.NextProtos = []string{"h2", "http/1.1"}
		}
		if r.requireClientCert {
			srv.TLSConfig.ClientAuth = tls.RequireAndVerifyClientCert
			srv.TLSConfig.ClientCAs = r.caPool
		}
		l = tls.NewListener(l, srv.TLSConfig)
	}
	r.servers = append(r.servers, srv)
	go srv.Serve(l)
	return scheme + "://" + l.Addr().String(), nil
}

func (r *Registry) logTail() string {
	b, _ := os.ReadFile(r.logPath)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, " | ")
}

func (r *Registry) stopProcess() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	select {
	case <-r.waitErr:
	case <-time.After(5 * time.Second):
	}
	r.cmd = nil
}

// Close stops the proxy, the token issuer and the registry. It is called by
// t.Cleanup; calling it earlier is allowed.
func (r *Registry) Close() {
	r.once.Do(func() {
		for _, s := range r.servers {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			s.Shutdown(ctx)
			cancel()
			s.Close()
		}
		r.stopProcess()
		if r.t.Failed() {
			r.t.Logf("registrytest: docker-registry log tail: %s", r.logTail())
		}
	})
}

// Ref returns "ADDR/repository", the registry location of repository.
func (r *Registry) Ref(repository string) string { return r.Addr + "/" + repository }

// CAPool returns the pool trusting the registry's CA (TLS mode).
func (r *Registry) CAPool() *x509.CertPool { return r.caPool }

// HTTPClient returns a client that trusts the registry's CA (and presents
// the client certificate in ClientCert mode). It does not authenticate.
func (r *Registry) HTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: r.clientTLS()}}
}

func (r *Registry) clientTLS() *tls.Config {
	c := &tls.Config{RootCAs: r.caPool}
	if r.CertDir != "" {
		if pair, err := tls.LoadX509KeyPair(filepath.Join(r.CertDir, "client.cert"), filepath.Join(r.CertDir, "client.key")); err == nil {
			c.Certificates = []tls.Certificate{pair}
		}
	}
	return c
}

// Requests returns every request the proxy saw since the start or the last
// ResetStats.
func (r *Registry) Requests() []Request { return r.proxy.snapshot() }

// Connections counts the connections clients opened to the proxy since
// the registry started.
func (r *Registry) Connections() int64 { return r.conns.Load() }

// Stats sums Requests.
func (r *Registry) Stats() Stats { return statsOf(r.proxy.snapshot()) }

// ResetStats forgets the requests seen so far.
func (r *Registry) ResetStats() { r.proxy.reset() }

// AddFault makes the proxy apply f to the requests it matches. A request
// gets the first matching fault of each kind, in the order added (Respond
// and Drop end it before forwarding).
func (r *Registry) AddFault(f Fault) { r.proxy.addFault(f) }

// ClearFaults removes every fault.
func (r *Registry) ClearFaults() {
	r.proxy.mu.Lock()
	r.proxy.faults = nil
	r.proxy.mu.Unlock()
}

// TokenRequests returns how many token requests the issuer answered
// (AuthToken), and the scope parameters of each.
func (r *Registry) TokenRequests() (int, []string) {
	if r.issuer == nil {
		return 0, nil
	}
	r.issuer.mu.Lock()
	defer r.issuer.mu.Unlock()
	return int(r.issuer.requests.Load()), append([]string(nil), r.issuer.scopes...)
}

// Authorize adds credentials with full access to repositories to req, as the
// harness's own requests need (a basic header, or a token minted directly).
func (r *Registry) Authorize(req *http.Request, repositories ...string) error {
	switch r.Auth {
	case AuthBasic:
		req.SetBasicAuth(Username, Password)
	case AuthToken:
		tok, err := r.issuer.fullAccess(repositories...)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return nil
}

// do sends an authorized request straight to the registry (not through the
// proxy, so it does not show in Requests).
func (r *Registry) do(method, path string, body []byte, header http.Header, repositories ...string) (*http.Response, error) {
	scheme := "http"
	if r.TLS {
		scheme = "https"
	}
	u := path
	if !strings.HasPrefix(u, "http") {
		u = scheme + "://" + r.BackendAddr + path
	}
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Host = r.Addr
	for k, v := range header {
		req.Header[k] = v
	}
	if err := r.Authorize(req, repositories...); err != nil {
		return nil, err
	}
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.caPool}},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("registrytest: unexpected redirect")
		},
	}
	return client.Do(req)
}
