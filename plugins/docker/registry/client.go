package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	orasregistry "oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/retry"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// endpoint is one opened repository.
type endpoint struct {
	p        *Plugin
	location string // as opened: docker.io/library/alpine
	name     string // registry name in references: docker.io
	host     string // host dialled: registry-1.docker.io
	repo     string // library/alpine
	mode     pluginapi.Mode
	opts     options
	creds    *credResolver
	base     *http.Transport
	conn     *conn
	client   *auth.Client
	tokens   *tokenCache
	ref      orasregistry.Reference

	mu     sync.Mutex
	scheme string // "https" or "http", decided on first use
	oras   *remote.Repository

	// mirrors (registries.conf, reads only) are tried before this
	// endpoint; pinned is the one that resolved an image last.
	mirrors []mirror
	pinned  atomic.Pointer[endpoint]

	// pending holds, by digest, the upload a refused mount opened, for
	// the upload of that blob (Writer.MountBlob).
	pending sync.Map
}

func newEndpoint(p *Plugin, location, name, host, repo string, mode pluginapi.Mode, opts options) (*endpoint, error) {
	c, err := p.conn(name, host, opts)
	if err != nil {
		return nil, fmt.Errorf("docker://%s: %w", location, err)
	}
	base := c.base
	e := &endpoint{
		p: p, location: location, name: name, host: host, repo: repo, mode: mode, opts: opts, conn: c,
		creds: &credResolver{name: name, repo: repo, opts: opts, helpers: p.credentialHelpers()},
		base:  base,
		ref:   orasregistry.Reference{Registry: host, Repository: repo},
	}
	policy := &retryPolicy{max: p.MaxRetries, base: p.RetryBase, maxWait: p.RetryMax, retryAfterMax: p.RetryAfterMax}
	httpClient := &http.Client{Transport: createdManifests{&idempotentRetry{
		retry: &retry.Transport{Base: c.rt, Policy: func() retry.Policy { return policy }},
		base:  c.rt,
	}}}
	e.tokens = newTokenCache()
	e.client = &auth.Client{
		Client:   httpClient,
		Header:   http.Header{"User-Agent": {opts.userAgent}},
		Cache:    e.tokens,
		ClientID: "stevedore",
		Credential: func(ctx context.Context, hostport string) (auth.Credential, error) {
			// Credentials go to the registry's own host only.
			if hostport != host {
				return auth.EmptyCredential, nil
			}
			cred, err := e.creds.get(ctx)
			if err != nil {
				return cred, &credentialError{err}
			}
			return cred, nil
		},
	}
	return e, nil
}

// conn returns the connection pool shared by endpoints of one registry with
// the same TLS settings.
func (p *Plugin) conn(name, host string, opts options) (*conn, error) {
	key := connKey{host: host, tlsVerify: opts.tlsVerify, certDir: opts.certDir}
	p.connMu.Lock()
	defer p.connMu.Unlock()
	if c, ok := p.conns[key]; ok {
		return c, nil
	}
	tlsConf, err := tlsConfig(name, host, opts)
	if err != nil {
		return nil, err
	}
	c := &conn{base: &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       tlsConf,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Blob bytes must arrive as stored: no transparent gzip.
		DisableCompression: true,
		// Large buffers cut syscalls on multi-GiB blobs.
		WriteBufferSize: 256 << 10,
		ReadBufferSize:  256 << 10,
	}}
	c.rt = &firstRequestGate{base: c.base, ready: make(chan struct{})}
	if p.conns == nil {
		p.conns = map[connKey]*conn{}
	}
	p.conns[key] = c
	return c, nil
}

// Close implements pluginapi.Endpoint. Idle connections stay open for the
// next endpoint of the same registry; the plugin process ends with the run.
func (e *endpoint) Close(ctx context.Context) error {
	// Abandon the uploads refused mounts opened that no upload used, at
	// once and briefly: it is housekeeping (registries expire uploads).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	e.pending.Range(func(k, v any) bool {
		e.pending.Delete(k)
		wg.Add(1)
		go func() {
			defer wg.Done()
			(&Writer{e}).cancelUpload(ctx, v.(upload).loc)
		}()
		return true
	})
	wg.Wait()
	return nil
}

// baseURL returns "https://host" or, when TLS verification is off and the
// host does not speak TLS, "http://host" (what skopeo does with
// --tls-verify=false).
func (e *endpoint) baseURL(ctx context.Context) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.scheme == "" {
		scheme, err := e.sharedScheme(ctx)
		if err != nil {
			return "", err
		}
		e.scheme = scheme
		e.oras = &remote.Repository{
			Client:             e.client,
			Reference:          e.ref,
			PlainHTTP:          scheme == "http",
			ManifestMediaTypes: manifest.Accept,
			TagListPageSize:    e.p.TagPageSize,
			MaxMetadataBytes:   4 << 20,
			// A registry must not make us follow Link headers forever.
			TagListMaxPages:      100_000,
			ReferrerListMaxPages: 10_000,
			// Never delete an old referrers index: registries may forbid
			// deletes, and a push must not fail for housekeeping.
			SkipReferrersGC: true,
		}
	}
	return e.scheme + "://" + e.host, nil
}

// sharedScheme detects the scheme once per registry connection pool.
func (e *endpoint) sharedScheme(ctx context.Context) (string, error) {
	e.conn.mu.Lock()
	defer e.conn.mu.Unlock()
	if e.conn.scheme != "" {
		return e.conn.scheme, nil
	}
	s, err := e.detectScheme(ctx)
	if err == nil {
		e.conn.scheme = s
	}
	return s, err
}

func (e *endpoint) detectScheme(ctx context.Context) (string, error) {
	if e.opts.tlsVerify {
		return "https", nil
	}
	probe := func(scheme string) error {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+e.host+"/v2/", nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", e.opts.userAgent)
		resp, err := e.base.RoundTrip(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		return nil
	}
	httpsErr := probe("https")
	if httpsErr == nil {
		return "https", nil
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if answeredHTTP(httpsErr) {
		// The server answered the TLS hello with an HTTP response: it
		// speaks plain HTTP, no second probe needed (the first request
		// says whether it is a registry).
		return "http", nil
	}
	if err := probe("http"); err == nil {
		return "http", nil
	}
	return "", e.fail("connect", fmt.Errorf("neither https nor http answered: %s: %w", oneLine(httpsErr.Error()), core.ErrUnavailable))
}

// repository returns the oras-go client of the repository.
func (e *endpoint) repository(ctx context.Context) (*remote.Repository, error) {
	if _, err := e.baseURL(ctx); err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.oras, nil
}

// url builds the URL of an API path under the repository ("/manifests/x").
func (e *endpoint) url(ctx context.Context, suffix string) (string, error) {
	base, err := e.baseURL(ctx)
	if err != nil {
		return "", err
	}
	return base + "/v2/" + e.repo + suffix, nil
}

// scoped asks for a token with the endpoint's actions (pull, plus push when
// writing: one token then serves every request of the endpoint) plus extra
// scopes.
func (e *endpoint) scoped(ctx context.Context, extra ...string) context.Context {
	actions := []string{auth.ActionPull}
	if e.mode == pluginapi.ModeWrite {
		actions = append(actions, auth.ActionPush)
	}
	ctx = auth.AppendRepositoryScope(ctx, e.ref, actions...)
	if len(extra) > 0 {
		ctx = auth.AppendScopesForHost(ctx, e.host, extra...)
	}
	return ctx
}

// do sends one request through the authenticating client. body may be nil;
// size is its length (set as Content-Length). A streamed body (anything but
// an in-memory reader, which stays rewindable for retries) is fenced when
// the call returns: net/http may go on reading a request body from its own
// goroutine after RoundTrip returned, and the caller's stream must not be
// read once the caller has moved on.
func (e *endpoint) do(ctx context.Context, method, url string, body io.Reader, size int64, header http.Header) (*http.Response, error) {
	switch body.(type) {
	case nil, *bytes.Reader, *bytes.Buffer, *strings.Reader, *os.File:
		// Nothing else reads these (a file is the request's own: see
		// localFile.from).
	default:
		f := &fencedBody{r: body}
		defer f.fence()
		body = f
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		if c, ok := body.(io.Closer); ok {
			c.Close() // the transport would have
		}
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		if size == 0 {
			req.Body, req.GetBody = http.NoBody, nil
		}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	return e.client.Do(req)
}

// createdManifests reads a 202 Accepted answer to a manifest PUT as 201
// Created. Quay answers 202 (containers/image#381); docker, skopeo, crane
// and our own manifest PUT take any 2xx, oras-go's push (used for a manifest
// with a subject, and for the referrers tag index) wants 201.
type createdManifests struct{ base http.RoundTripper }

func (c createdManifests) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err == nil && req.Method == http.MethodPut && resp.StatusCode == http.StatusAccepted && strings.Contains(req.URL.Path, "/manifests/") {
		resp.StatusCode, resp.Status = http.StatusCreated, "201 Created"
	}
	return resp, err
}

// tlsConfig builds the TLS settings: system roots plus the CA files and
// client certificates of cert-dir, or of the certs.d directories.
func tlsConfig(name, host string, opts options) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: !opts.tlsVerify}
	var dirs []string
	if opts.certDir != "" {
		dirs = []string{opts.certDir}
	} else {
		for _, root := range certsDRoots {
			dirs = append(dirs, filepath.Join(root, name))
			if host != name {
				dirs = append(dirs, filepath.Join(root, host))
			}
		}
	}
	var cas []*x509.Certificate
	for _, dir := range dirs {
		found, err := loadCertDir(conf, dir)
		if err != nil {
			return nil, err
		}
		cas = append(cas, found...)
	}
	if len(cas) > 0 && opts.tlsVerify {
		verifyExtraFirst(conf, cas)
	}
	return conf, nil
}

// verifyExtraFirst makes conf trust the system roots plus the CA
// certificates cas (those of the certificate directories, as docker and
// skopeo do), checking a server against cas alone first: a registry with a
// private CA gets the same answer without the system's few hundred root
// certificates being parsed (~20 ms) on every run; they are loaded only
// when cas do not verify the server. The standard verification is
// replaced, not skipped: VerifyConnection checks the chain, its use for
// server authentication and the host name on every handshake, resumed
// ones included.
func verifyExtraFirst(conf *tls.Config, cas []*x509.Certificate) {
	extra := x509.NewCertPool()
	for _, c := range cas {
		extra.AddCert(c)
	}
	full := sync.OnceValue(func() *x509.CertPool {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			return extra
		}
		for _, c := range cas {
			pool.AddCert(c)
		}
		return pool
	})
	conf.RootCAs = nil
	conf.InsecureSkipVerify = true // verification is VerifyConnection's
	conf.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("tls: server sent no certificate")
		}
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		vo := x509.VerifyOptions{DNSName: cs.ServerName, Intermediates: inter, Roots: extra}
		if _, err := cs.PeerCertificates[0].Verify(vo); err == nil {
			return nil
		}
		vo.Roots = full()
		if _, err := cs.PeerCertificates[0].Verify(vo); err != nil {
			return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
		}
		return nil
	}
}

// certsDRoots are the per-host certificate directories docker and the
// containers tools read.
var certsDRoots = []string{"/etc/containers/certs.d", "/etc/docker/certs.d"}

// loadCertDir adds the client certificates of dir to conf and returns its
// CA certificates (*.crt).
func loadCertDir(conf *tls.Config, dir string) ([]*x509.Certificate, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("certificate directory %s: %w", dir, err)
	}
	names := make([]string, 0, len(entries))
	for _, ent := range entries {
		names = append(names, ent.Name())
	}
	sort.Strings(names)
	var cas []*x509.Certificate
	for _, n := range names {
		path := filepath.Join(dir, n)
		switch {
		case strings.HasSuffix(n, ".crt"):
			pem, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("CA certificate %s: %w", path, err)
			}
			certs := parseCerts(pem)
			if len(certs) == 0 {
				return nil, fmt.Errorf("CA certificate %s holds no PEM certificate: %w", path, core.ErrInvalid)
			}
			cas = append(cas, certs...)
		case strings.HasSuffix(n, ".cert"):
			keyPath := strings.TrimSuffix(path, ".cert") + ".key"
			pair, err := tls.LoadX509KeyPair(path, keyPath)
			if err != nil {
				return nil, fmt.Errorf("client certificate %s with key %s: %v: %w", path, keyPath, err, core.ErrInvalid)
			}
			conf.Certificates = append(conf.Certificates, pair)
		case strings.HasSuffix(n, ".key"):
			if _, err := os.Stat(strings.TrimSuffix(path, ".key") + ".cert"); err != nil {
				return nil, fmt.Errorf("client key %s has no matching .cert file: %w", path, core.ErrInvalid)
			}
		}
	}
	return cas, nil
}

// parseCerts returns the certificates of the PEM CERTIFICATE blocks in b,
// skipping what does not parse (as x509.CertPool.AppendCertsFromPEM does).
func parseCerts(b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return out
		}
		if block.Type != "CERTIFICATE" || len(block.Headers) != 0 {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

// firstRequestGate holds a registry's requests until its first one has its
// answer. Over TLS the registry may speak HTTP/2: once that first
// connection is up, concurrent requests share it instead of each dialling
// (and handshaking) its own, which on a sync of many tags means one TLS
// handshake per registry instead of one per request in flight. Over
// HTTP/1.1 it costs the wait for one answer, once; plain HTTP (never
// HTTP/2 here) is not held at all.
type firstRequestGate struct {
	base    http.RoundTripper
	started atomic.Bool
	ready   chan struct{}
}

func (g *firstRequestGate) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" {
		return g.base.RoundTrip(req)
	}
	if !g.started.Swap(true) {
		if req.Body != nil && req.Body != http.NoBody {
			close(g.ready) // an upload: the others must not wait for its bytes
		} else {
			defer close(g.ready)
		}
		return g.base.RoundTrip(req)
	}
	select {
	case <-g.ready:
	case <-req.Context().Done():
		if req.Body != nil {
			req.Body.Close() // RoundTrip must close the body, even on error
		}
		return nil, req.Context().Err()
	}
	return g.base.RoundTrip(req)
}

// idempotentRetry retries only requests that are safe to repeat: GET, HEAD,
// PUT and DELETE, and a POST without a body (starting an upload or asking
// for a mount creates nothing a second attempt conflicts with). A PATCH
// carries upload bytes that were consumed; the upload code resumes it from
// the registry's offset instead.
type idempotentRetry struct {
	retry *retry.Transport
	base  http.RoundTripper
}

func (t *idempotentRetry) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions:
		return t.retry.RoundTrip(req)
	case http.MethodPost:
		if req.Body == nil || req.Body == http.NoBody {
			return t.retry.RoundTrip(req)
		}
	}
	return t.base.RoundTrip(req)
}

// retryPolicy retries 408, 429, 500, 502, 503, 504 and broken connections
// with exponential backoff and jitter, honouring Retry-After.
type retryPolicy struct {
	max           int
	base, maxWait time.Duration
	retryAfterMax time.Duration
}

func (p *retryPolicy) Retry(attempt int, resp *http.Response, err error) (time.Duration, error) {
	if attempt >= p.max || !retryable(resp, err) {
		return -1, nil
	}
	if resp != nil {
		if d, ok := retryAfter(resp); ok {
			if d > p.retryAfterMax {
				// Longer than any wait the host's timeouts allow: the
				// answer is the error (it says how long the registry
				// asks to wait), not a wait that ends in a timeout.
				return -1, nil
			}
			return d, nil
		}
	}
	return backoff(attempt, p.base, p.maxWait), nil
}

func backoff(attempt int, base, maxWait time.Duration) time.Duration {
	d := base << attempt
	if d > maxWait || d <= 0 {
		d = maxWait
	}
	// ±20% jitter so that parallel transfers do not retry in lockstep.
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func retryable(resp *http.Response, err error) bool {
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return false
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return true
		}
		return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
			errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
	}
	switch resp.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// retryAfter reads a Retry-After header in seconds or as an HTTP date.
func retryAfter(resp *http.Response) (time.Duration, bool) {
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

// fencedBody stops passing reads to r once fenced.
type fencedBody struct {
	mu     sync.Mutex
	r      io.Reader
	fenced bool
}

var errFenced = errors.New("request body read after its request ended")

func (f *fencedBody) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fenced {
		return 0, errFenced
	}
	return f.r.Read(p)
}

func (f *fencedBody) fence() {
	f.mu.Lock()
	f.fenced = true
	f.mu.Unlock()
}

// answeredHTTP reports whether err is a TLS handshake that got a plain
// HTTP response back (net/http's "server gave HTTP response to HTTPS
// client").
func answeredHTTP(err error) bool {
	var rh tls.RecordHeaderError
	return errors.Is(err, http.ErrSchemeMismatch) || errors.As(err, &rh) && string(rh.RecordHeader[:]) == "HTTP/"
}
