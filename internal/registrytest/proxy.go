package registrytest

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
)

// Request is one request the proxy saw.
type Request struct {
	Method   string
	Path     string
	RawQuery string
	// Header holds the request headers as the client sent them.
	Header http.Header
	// Status is the status the client got (0 when the connection was dropped
	// before an answer).
	Status int
	// BytesIn is the request body bytes read from the client; BytesOut the
	// response body bytes written to it.
	BytesIn, BytesOut int64
	// Fault is the kind of the first fault applied, 0 for none.
	Fault FaultKind
}

// IsBlobUpload reports whether the request is part of a blob upload
// (POST/PATCH/PUT under /blobs/uploads/).
func (r Request) IsBlobUpload() bool { return strings.Contains(r.Path, "/blobs/uploads/") }

// IsBlobGet reports whether the request fetched a blob's content.
func (r Request) IsBlobGet() bool {
	return r.Method == http.MethodGet && strings.Contains(r.Path, "/blobs/") && !r.IsBlobUpload()
}

// IsMount reports whether the request asked for a cross-repository mount.
func (r Request) IsMount() bool {
	if r.Method != http.MethodPost || !r.IsBlobUpload() {
		return false
	}
	q, _ := url.ParseQuery(r.RawQuery)
	return q.Get("mount") != ""
}

// Stats sums the requests the proxy saw.
type Stats struct {
	Requests int
	// ByMethod counts requests per HTTP method.
	ByMethod map[string]int
	// BlobUploadBytes is the request body bytes of blob uploads: layer bytes
	// pushed.
	BlobUploadBytes int64
	// BlobDownloadBytes is the response body bytes of blob GETs: layer bytes
	// pulled.
	BlobDownloadBytes int64
	// Mounts counts mount requests and MountsCreated those answered 201.
	Mounts, MountsCreated int
	// Uploads counts upload sessions started (POST without a 201 answer).
	Uploads int
}

// FaultKind selects what a Fault does.
type FaultKind int

const (
	// Respond answers Status (with Header and Body) without forwarding.
	Respond FaultKind = iota + 1
	// Drop closes the connection without forwarding or answering.
	Drop
	// CutRequest forwards only the first At bytes of the request body, then
	// drops both connections (a broken upload).
	CutRequest
	// DropResponse forwards the whole request, lets the registry act on it,
	// then drops the connection before the answer (a lost response).
	DropResponse
	// CutResponse forwards, then drops the connection after At bytes of the
	// response body (a broken download).
	CutResponse
	// FlipByte forwards and XORs the response body byte at offset At with
	// 0xff (corruption in transit).
	FlipByte
	// StripHeaders forwards and removes Headers from the answer.
	StripHeaders
	// SetHeaders forwards and sets the answer's headers to Header (a
	// registry that reports what it did wrongly).
	SetHeaders
	// SetStatus forwards, lets the registry act, and answers Status instead
	// of the registry's status (a registry with its own idea of success).
	SetStatus
)

// Fault changes how the proxy handles the requests it matches.
type Fault struct {
	Kind  FaultKind
	Match Match
	// Times is how many matching requests the fault applies to; 0 means all.
	Times int

	Status int         // Respond
	Header http.Header // Respond, SetHeaders
	Body   string      // Respond
	// Drain (Respond) reads the whole request body before answering, as a
	// registry that checks it does; otherwise the answer goes first.
	Drain   bool
	At      int64    // CutRequest, CutResponse, FlipByte
	Headers []string // StripHeaders
}

// Match selects requests.
type Match func(*http.Request) bool

// MatchAll matches every request.
func MatchAll(*http.Request) bool { return true }

// MatchMethodPath matches requests with the method (any when "") whose path
// contains substr.
func MatchMethodPath(method, substr string) Match {
	return func(r *http.Request) bool {
		return (method == "" || r.Method == method) && strings.Contains(r.URL.Path, substr)
	}
}

// MatchBlobGet matches GETs of the content of blob d.
func MatchBlobGet(d digest.Digest) Match {
	return MatchMethodPath(http.MethodGet, "/blobs/"+d.String())
}

// MatchManifest matches requests with the method (any when "") for the
// manifest reference (tag or digest; any when "").
func MatchManifest(method, reference string) Match {
	return MatchMethodPath(method, "/manifests/"+reference)
}

// MatchUploadPatch matches the PATCH requests of blob uploads.
func MatchUploadPatch() Match { return MatchMethodPath(http.MethodPatch, "/blobs/uploads/") }

type activeFault struct {
	Fault
	left int // remaining applications; <0 means unlimited
}

// proxy forwards to the registry, records and injects faults.
type proxy struct {
	backend   *url.URL
	transport http.RoundTripper

	// expired, when set, says whether a request carries a token past its
	// age, and the challenge to answer it with.
	expired func(*http.Request) (challenge string, ok bool)

	mu       sync.Mutex
	requests []Request
	faults   []*activeFault
}

func (p *proxy) addFault(f Fault) {
	if f.Match == nil {
		f.Match = MatchAll
	}
	left := f.Times
	if left == 0 {
		left = -1
	}
	p.mu.Lock()
	p.faults = append(p.faults, &activeFault{Fault: f, left: left})
	p.mu.Unlock()
}

// takeFaults returns the faults that apply to r: the first matching fault of
// each kind (kinds combine: a response can be both stripped of headers and
// corrupted).
func (p *proxy) takeFaults(r *http.Request) []Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Fault
	taken := map[FaultKind]bool{}
	kept := p.faults[:0]
	for _, f := range p.faults {
		if f.left != 0 && !taken[f.Kind] && f.Match(r) {
			taken[f.Kind] = true
			if f.left > 0 {
				f.left--
			}
			out = append(out, f.Fault)
		}
		if f.left != 0 {
			kept = append(kept, f)
		}
	}
	p.faults = kept
	return out
}

func (p *proxy) record(rec Request) {
	p.mu.Lock()
	p.requests = append(p.requests, rec)
	p.mu.Unlock()
}

// hopHeaders are not forwarded (RFC 9110 section 7.6.1).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// countingReader is a request body forwarded to the registry. The
// backend transport may go on reading it from its own goroutine after the
// registry answered early (a refused upload), so it is guarded, and ends
// once the handler is done with it.
type countingReader struct {
	mu    sync.Mutex
	r     io.Reader
	n     int64
	limit int64 // <0: none; else fail after limit bytes
	done  bool
}

var errCut = errors.New("registrytest: request body cut by fault")

func (c *countingReader) Read(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return 0, io.EOF
	}
	if c.limit >= 0 {
		if c.n >= c.limit {
			return 0, errCut
		}
		if rest := c.limit - c.n; int64(len(b)) > rest {
			b = b[:rest]
		}
	}
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

// finish ends the body for late readers and returns the bytes read.
func (c *countingReader) finish() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = true
	return c.n
}

func (c *countingReader) Close() error { return nil }

// faultSet is the faults applied to one request.
type faultSet []Fault

func (fs faultSet) find(k FaultKind) *Fault {
	for i := range fs {
		if fs[i].Kind == k {
			return &fs[i]
		}
	}
	return nil
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone()}
	faults := faultSet(p.takeFaults(r))
	if len(faults) > 0 {
		rec.Fault = faults[0].Kind
	}
	body := &countingReader{r: r.Body, limit: -1}
	defer func() {
		rec.BytesIn = body.finish()
		p.record(rec)
	}()

	if p.expired != nil {
		if challenge, ok := p.expired(r); ok {
			w.Header().Set("Www-Authenticate", challenge)
			w.Header().Set("Content-Type", "application/json")
			rec.Status = http.StatusUnauthorized
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":"token expired"}]}`)
			return
		}
	}
	if f := faults.find(Respond); f != nil {
		if f.Drain {
			io.Copy(io.Discard, body)
		}
		for k, v := range f.Header {
			w.Header()[k] = v
		}
		rec.Status = f.Status
		w.WriteHeader(f.Status)
		n, _ := io.WriteString(w, f.Body)
		rec.BytesOut = int64(n)
		return
	}
	if faults.find(Drop) != nil {
		panic(http.ErrAbortHandler)
	}
	cutReq := faults.find(CutRequest)
	if cutReq != nil {
		body.limit = cutReq.At
	}

	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme = p.backend.Scheme
	out.URL.Host = p.backend.Host
	out.Host = r.Host // the registry builds Location URLs from it: keep clients on the proxy
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	if r.ContentLength == 0 {
		out.Body = nil
	} else {
		out.Body = body
	}
	resp, err := p.transport.RoundTrip(out)
	if err != nil || cutReq != nil || faults.find(DropResponse) != nil {
		if resp != nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if err != nil && len(faults) == 0 {
			rec.Status = http.StatusBadGateway
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		panic(http.ErrAbortHandler)
	}
	defer resp.Body.Close()
	for _, h := range hopHeaders {
		resp.Header.Del(h)
	}
	if f := faults.find(StripHeaders); f != nil {
		for _, h := range f.Headers {
			resp.Header.Del(h)
		}
	}
	if f := faults.find(SetHeaders); f != nil {
		for k, v := range f.Header {
			resp.Header[k] = v
		}
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	rec.Status = resp.StatusCode
	if f := faults.find(SetStatus); f != nil {
		rec.Status = f.Status
	}
	w.WriteHeader(rec.Status)

	flip, cut := faults.find(FlipByte), faults.find(CutResponse)
	buf := make([]byte, 256<<10)
	var off int64
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if flip != nil && flip.At >= off && flip.At < off+int64(n) {
				chunk[flip.At-off] ^= 0xff
			}
			if cut != nil && off+int64(n) > cut.At {
				chunk = chunk[:cut.At-off]
				if len(chunk) > 0 {
					w.Write(chunk)
				}
				rec.BytesOut += int64(len(chunk))
				if f, ok := w.(http.Flusher); ok {
					f.Flush()
				}
				panic(http.ErrAbortHandler)
			}
			if _, werr := w.Write(chunk); werr != nil {
				return
			}
			rec.BytesOut += int64(n)
			off += int64(n)
		}
		if rerr != nil {
			return
		}
	}
}

func (p *proxy) snapshot() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.requests...)
}

func (p *proxy) reset() {
	p.mu.Lock()
	p.requests = nil
	p.mu.Unlock()
}

func statsOf(reqs []Request) Stats {
	s := Stats{ByMethod: map[string]int{}}
	for _, r := range reqs {
		s.Requests++
		s.ByMethod[r.Method]++
		switch {
		case r.IsMount():
			s.Mounts++
			if r.Status == http.StatusCreated {
				s.MountsCreated++
			} else if r.Status == http.StatusAccepted {
				s.Uploads++
			}
		case r.IsBlobUpload():
			s.BlobUploadBytes += r.BytesIn
			if r.Method == http.MethodPost && r.Status == http.StatusAccepted {
				s.Uploads++
			}
		case r.IsBlobGet():
			s.BlobDownloadBytes += r.BytesOut
		}
	}
	return s
}
