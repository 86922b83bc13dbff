package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/server/storage"
)

// Options configure a registry handler.
type Options struct {
	// Root is the storage directory (one OCI layout per repository). Used
	// when Store is nil.
	Root string
	// Store overrides Root with an already opened store.
	Store *storage.Store
	// MaxUploadSize caps one blob in bytes (0 = unlimited).
	MaxUploadSize int64
	// UploadTTL is how long an idle upload session lives (default 1h).
	UploadTTL time.Duration
	// ReadOnly refuses every write with 405 UNSUPPORTED.
	ReadOnly bool
	// ReferrersPageSize caps the descriptors of one referrers response
	// (default DefaultReferrersPageSize); a Link header names the next
	// page, as the distribution spec lets registries do.
	ReferrersPageSize int
	// AllowSparseManifests accepts manifests whose blobs or child
	// manifests are not in the repository (mirrors of a subset of
	// platforms). By default such a PUT fails with MANIFEST_BLOB_UNKNOWN.
	AllowSparseManifests bool

	// AnonymousWrite lets unauthenticated clients push and delete when no
	// htpasswd, policy or Authorize hook says otherwise. Run sets it for
	// loopback addresses; embedders decide.
	AnonymousWrite bool
	// HtpasswdFile enables basic authentication (bcrypt entries only).
	HtpasswdFile string
	// Token enables the built-in bearer token endpoint at /token: clients
	// are challenged with Bearer and exchange credentials for a scoped,
	// expiring token. Requires HtpasswdFile or Authorize.
	Token bool
	// TokenKey signs tokens (HS256); random per process when empty.
	TokenKey []byte
	// TokenTTL is a token's lifetime (default 5 minutes).
	TokenTTL time.Duration
	// PolicyFile is an access policy (see Policy); without one,
	// authenticated users may do anything and anonymous users may pull
	// (and push when AnonymousWrite is set and no htpasswd is configured).
	PolicyFile string
	// Policy is an already parsed policy (overrides PolicyFile).
	Policy *Policy
	// Authorize, if set, is asked after the built-in rules allowed a
	// request; it may refuse it (return an error wrapping core.ErrDenied
	// or core.ErrUnauthorized).
	Authorize AuthorizeFunc

	// Logger receives the access log (Info) and errors. nil = silent.
	Logger hclog.Logger
}

// DefaultReferrersPageSize is the most descriptors one referrers response
// holds by default: a subject with thousands of signatures and
// attestations is listed in pages, not in one response of megabytes.
const DefaultReferrersPageSize = 1000

// Server is the registry handler. It is safe for concurrent use.
type Server struct {
	opts    Options
	store   *storage.Store
	log     hclog.Logger
	auth    *authenticator
	metrics *metrics
}

// New builds the registry handler. The returned value is a *Server.
func New(opts Options) (http.Handler, error) { return NewServer(opts) }

// NewServer is New with the concrete type, for callers that want Store or
// Metrics.
func NewServer(opts Options) (*Server, error) {
	st := opts.Store
	if st == nil {
		var err error
		st, err = storage.Open(opts.Root, storage.Options{UploadTTL: opts.UploadTTL, MaxUploadSize: opts.MaxUploadSize})
		if err != nil {
			return nil, err
		}
	}
	lg := opts.Logger
	if lg == nil {
		lg = hclog.NewNullLogger()
	}
	a, err := newAuthenticator(opts)
	if err != nil {
		return nil, err
	}
	return &Server{opts: opts, store: st, log: lg, auth: a, metrics: newMetrics()}, nil
}

// Store is the server's content store.
func (s *Server) Store() *storage.Store { return s.store }

// route is a parsed /v2/ request path.
type route struct {
	kind string // ping, catalog, manifest, blob, upload, tags, referrers
	name string
	ref  string // tag/digest, digest, or upload id
}

// parseRoute splits a /v2/ path. The last segments name the route; the
// rest is the repository name, validated by the caller before any use.
func parseRoute(p string) (route, bool) {
	if p == "/v2" || p == "/v2/" {
		return route{kind: "ping"}, true
	}
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return route{}, false
	}
	if rest == "_catalog" {
		return route{kind: "catalog"}, true
	}
	segs := strings.Split(rest, "/")
	n := len(segs)
	if n >= 4 && segs[n-3] == "blobs" && segs[n-2] == "uploads" {
		return route{kind: "upload", name: strings.Join(segs[:n-3], "/"), ref: segs[n-1]}, true
	}
	if n >= 3 && segs[n-2] == "blobs" && segs[n-1] == "uploads" {
		return route{kind: "upload", name: strings.Join(segs[:n-2], "/")}, true
	}
	if n < 3 {
		return route{}, false
	}
	name := strings.Join(segs[:n-2], "/")
	switch {
	case segs[n-2] == "manifests":
		return route{kind: "manifest", name: name, ref: segs[n-1]}, true
	case segs[n-2] == "blobs":
		return route{kind: "blob", name: name, ref: segs[n-1]}, true
	case segs[n-2] == "tags" && segs[n-1] == "list":
		return route{kind: "tags", name: name}, true
	case segs[n-2] == "referrers":
		return route{kind: "referrers", name: name, ref: segs[n-1]}, true
	}
	return route{}, false
}

// action is what a request does to a repository, for authorization.
func action(method string, rt route) Action {
	switch method {
	case http.MethodGet, http.MethodHead:
		if rt.kind == "upload" {
			return ActionPush
		}
		return ActionPull
	case http.MethodDelete:
		if rt.kind == "upload" {
			return ActionPush
		}
		return ActionDelete
	}
	return ActionPush
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &respWriter{ResponseWriter: w, status: http.StatusOK}
	var rt route
	defer func() {
		d := time.Since(start)
		s.metrics.observe(r.Method, rt.kind, rw.status, rw.bytes, r.ContentLength, d)
		if s.opts.Logger != nil {
			s.log.Info("request", "method", r.Method, "path", r.URL.Path, "repo", rt.name, "status", rw.status, "bytes", rw.bytes, "duration", d, "remote", r.RemoteAddr)
		}
	}()
	switch r.URL.Path {
	case "/healthz":
		rw.Header().Set("Content-Type", "text/plain")
		_, _ = rw.Write([]byte("ok\n"))
		return
	case "/metrics":
		s.metrics.write(rw, s.store.UploadCount())
		return
	case "/token":
		if s.auth.tokens != nil {
			s.auth.serveToken(rw, r)
			return
		}
	}
	ok := false
	rt, ok = parseRoute(r.URL.Path)
	rw.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
	if !ok {
		writeError(rw, r, &apiError{Status: http.StatusNotFound, Code: codeNameUnknown, Message: fmt.Sprintf("no route for %s", r.URL.Path)})
		return
	}
	if rt.kind != "ping" && rt.kind != "catalog" {
		if err := storage.ValidateName(rt.name); err != nil {
			writeError(rw, r, newErr(http.StatusBadRequest, codeNameInvalid, err))
			return
		}
	}
	act := action(r.Method, rt)
	if rt.kind == "catalog" || rt.kind == "ping" {
		act = ActionPull
	}
	id, err := s.auth.check(r, rt, act)
	if err != nil {
		s.auth.challenge(rw, r, rt, act, err)
		return
	}
	if s.opts.ReadOnly && act != ActionPull {
		writeError(rw, r, newErr(http.StatusMethodNotAllowed, codeUnsupported, fmt.Errorf("registry is read-only: %w", core.ErrUnsupported)))
		return
	}
	rq := &request{s: s, w: rw, r: r, rt: rt, id: id}
	switch rt.kind {
	case "ping":
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write([]byte("{}"))
	case "catalog":
		s.catalog(rq)
	case "manifest":
		s.manifest(rq)
	case "blob":
		s.blob(rq)
	case "upload":
		s.upload(rq)
	case "tags":
		s.tags(rq)
	case "referrers":
		s.referrers(rq)
	}
}

// request carries one API call through its handler.
type request struct {
	s  *Server
	w  http.ResponseWriter
	r  *http.Request
	rt route
	id Identity
}

func (q *request) fail(err error) { writeError(q.w, q.r, err) }

func methodNotAllowed(q *request) {
	q.fail(newErr(http.StatusMethodNotAllowed, codeUnsupported, fmt.Errorf("%s is not supported on %s", q.r.Method, q.r.URL.Path)))
}

// respWriter records the status and body bytes for the access log.
type respWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *respWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status = code
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *respWriter) Write(b []byte) (int, error) {
	w.wrote = true
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom keeps the connection's ReadFrom (sendfile for files) for bodies copied into the writer.
func (w *respWriter) ReadFrom(r io.Reader) (int64, error) {
	w.wrote = true
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(w.ResponseWriter, r)
	}
	w.bytes += n
	return n, err
}

func (w *respWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
