// Package testplugin is an in-memory transport ("mem") for testing the
// pluginapi wire layer over a real plugin process. Locations are names of
// in-memory stores that live as long as the process. Open options inject
// faults:
//
//	fail-after=N   GetBlob fails after N bytes (wrapping core.ErrUnavailable)
//	stall-after=N  GetBlob blocks after N bytes until its context ends
//	stall-put=true PutBlob reads nothing and blocks until its context ends
//	               (PutBlobFileProgress: reports nothing and blocks)
//	abort-marker=DIR a stalled PutBlob, once cancelled, cleans up for 300 ms
//	               and then writes DIR/<hex of the blob's digest>
//	file-put=true  a write-mode endpoint also takes blobs from local files
//	               (FileProgressPutter), reporting every 64 KiB read
//	deny-put=true  PutBlob reads nothing and fails (wrapping core.ErrDenied)
//	synthetic=true GetBlob serves desc.Size bytes of a fixed pattern for any
//	               digest (for benchmarks; the bytes do not match the digest)
//	crash-after=N  GetBlob kills the plugin process (exit status 3) after N bytes
//	hang=CALL      CALL (open, resolve, get-manifest, has-blob, close) never returns,
//	               whatever its context: a deadlocked plugin
//	seed=DIR       an empty store is first filled from the OCI layout at DIR
//	signatures=true the endpoint also keeps signatures (SignatureLister, and
//	               SignatureWriter in write mode)
//
// Plugin.Defaults supplies options that a request does not set (the
// stevedore-plugin-mem binary reads them from STEVEDORE_MEM_OPTIONS).
//
// A read-mode endpoint is a Source and TagLister; a write-mode endpoint is
// also a Destination and Deleter. It is test code: blobs are held in memory.
package testplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/content"
	coremanifest "github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// Transport is the transport name served.
const Transport = "mem"

// Plugin is the in-memory transport plugin.
type Plugin struct {
	// Defaults are options used when an OpenRequest does not set them.
	Defaults map[string]string

	mu     sync.Mutex
	stores map[string]*store
	// Claims are transports the plugin says it serves besides Transport
	// (it does not: Open refuses them).
	Claims []string
}

// New returns an empty plugin.
func New() *Plugin { return &Plugin{stores: map[string]*store{}} }

// Transports implements pluginapi.Plugin: Transport, and Claims (a plugin
// claiming other transports than it serves, for the host's tests).
func (p *Plugin) Transports() []string { return append([]string{Transport}, p.Claims...) }

// Version implements pluginapi.Versioner.
func (p *Plugin) Version() string { return "test-1.0" }

// Open implements pluginapi.Plugin.
func (p *Plugin) Open(_ context.Context, req pluginapi.OpenRequest) (pluginapi.Endpoint, error) {
	if req.Transport != Transport {
		return nil, fmt.Errorf("transport %q: %w", req.Transport, core.ErrUnsupported)
	}
	if req.Location == "" {
		return nil, fmt.Errorf("mem: empty location: %w", core.ErrInvalid)
	}
	opts := map[string]string{}
	for k, v := range p.Defaults {
		opts[k] = v
	}
	for k, v := range req.Options {
		opts[k] = v
	}
	if opts["hang"] == "open" {
		select {} // a deadlocked plugin: the host must give up on its own
	}
	p.mu.Lock()
	s := p.stores[req.Location]
	if s == nil {
		s = &store{blobs: map[digest.Digest][]byte{}, manifests: map[digest.Digest]manifest{}, tags: map[string]digest.Digest{}}
		p.stores[req.Location] = s
	}
	p.mu.Unlock()
	r := &reader{s: s, p: p, loc: req.Location, name: "mem:" + req.Location, hang: opts["hang"]}
	if dir := opts["seed"]; dir != "" {
		if err := s.seed(dir); err != nil {
			return nil, fmt.Errorf("%s: seed from %s: %w", r.name, dir, err)
		}
	}
	for k, v := range opts {
		switch k {
		case "fail-after", "stall-after", "crash-after":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: option %s=%q: %w", r.name, k, v, core.ErrInvalid)
			}
			switch k {
			case "fail-after":
				r.failAfter = n
			case "stall-after":
				r.stallAfter = n
			default:
				r.crashAfter = n
			}
		case "synthetic":
			r.synthetic = v == "true"
		case "stall-put":
			r.stallPut = v == "true"
		case "abort-marker":
			r.abortMarker = v
		case "file-put":
			r.filePut = v == "true"
		case "deny-put":
			r.denyPut = v == "true"
		}
	}
	sigs := opts["signatures"] == "true"
	switch {
	case req.Mode == pluginapi.ModeWrite && sigs:
		return &sigWriter{&writer{r}}, nil
	case req.Mode == pluginapi.ModeWrite && r.filePut:
		return &fileWriter{&writer{r}}, nil
	case req.Mode == pluginapi.ModeWrite:
		return &writer{r}, nil
	case sigs:
		return &sigReader{r}, nil
	}
	return r, nil
}

type manifest struct {
	desc ocispec.Descriptor
	raw  []byte
}

type store struct {
	mu        sync.Mutex
	blobs     map[digest.Digest][]byte
	manifests map[digest.Digest]manifest
	tags      map[string]digest.Digest
	sigs      map[digest.Digest][][]byte
}

// seed fills an empty store from the OCI layout at dir: every blob, every
// blob that parses as a manifest also as a manifest, and the tags of
// index.json.
func (s *store) seed(dir string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.blobs) > 0 {
		return nil
	}
	raw, err := os.ReadFile(filepath.Join(dir, ocispec.ImageIndexFile))
	if err != nil {
		return err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return fmt.Errorf("index.json: %w", err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, ocispec.ImageBlobsDir, "sha256"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, ocispec.ImageBlobsDir, "sha256", e.Name()))
		if err != nil {
			return err
		}
		s.blobs[d] = b
		if len(b) <= content.MaxManifestSize {
			if mt, err := coremanifest.DetectMediaType(b); err == nil && coremanifest.IsManifest(mt) {
				s.manifests[d] = manifest{desc: ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}, raw: b}
			}
		}
	}
	for _, m := range idx.Manifests {
		if name := m.Annotations[ocispec.AnnotationRefName]; name != "" {
			s.tags[name] = m.Digest
		}
	}
	return nil
}

// reader is a read-mode endpoint: Source and TagLister.
type reader struct {
	s          *store
	p          *Plugin
	loc        string
	name       string
	failAfter  int64
	stallAfter int64
	crashAfter int64
	synthetic  bool
	stallPut   bool
	// abortMarker: a stalled put, once cancelled, takes a moment to
	// clean up and then leaves a file named after the blob here.
	abortMarker string
	filePut     bool
	denyPut     bool
	hang        string
}

// hangIf blocks forever when the endpoint was told to hang in call.
func (r *reader) hangIf(call string) {
	if r.hang == call {
		select {}
	}
}

func (r *reader) Close(context.Context) error {
	r.hangIf("close")
	return nil
}

func (r *reader) Resolve(_ context.Context, ref string) (ocispec.Descriptor, error) {
	r.hangIf("resolve")
	if ref == "" {
		ref = "latest"
	}
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	d, err := digest.Parse(ref)
	if err != nil {
		var ok bool
		if d, ok = r.s.tags[ref]; !ok {
			return ocispec.Descriptor{}, fmt.Errorf("%s: tag %q: %w", r.name, ref, core.ErrNotFound)
		}
	}
	m, ok := r.s.manifests[d]
	if !ok {
		return ocispec.Descriptor{}, fmt.Errorf("%s: manifest %s: %w", r.name, d, core.ErrNotFound)
	}
	return m.desc, nil
}

func (r *reader) GetManifest(_ context.Context, desc ocispec.Descriptor) ([]byte, error) {
	r.hangIf("get-manifest")
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	m, ok := r.s.manifests[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("%s: manifest %s: %w", r.name, desc.Digest, core.ErrNotFound)
	}
	return m.raw, nil
}

func (r *reader) GetBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	var src io.Reader
	if r.synthetic {
		src = &pattern{left: desc.Size - offset}
	} else {
		r.s.mu.Lock()
		b, ok := r.s.blobs[desc.Digest]
		r.s.mu.Unlock()
		if !ok {
			return nil, fmt.Errorf("%s: blob %s: %w", r.name, desc.Digest, core.ErrNotFound)
		}
		if offset > int64(len(b)) {
			return nil, fmt.Errorf("%s: blob %s: offset %d past end: %w", r.name, desc.Digest, offset, core.ErrInvalid)
		}
		src = bytes.NewReader(b[offset:])
	}
	if r.failAfter > 0 || r.stallAfter > 0 {
		src = &faulty{ctx: ctx, r: src, name: r.name, desc: desc, failAfter: r.failAfter, stallAfter: r.stallAfter}
	}
	if r.crashAfter > 0 {
		src = &crasher{r: src, left: r.crashAfter}
	}
	return io.NopCloser(src), nil
}

func (r *reader) ListTags(context.Context) ([]string, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	tags := make([]string, 0, len(r.s.tags))
	for t := range r.s.tags {
		tags = append(tags, t)
	}
	slices.Sort(tags)
	return tags, nil
}

// ListRepositories lists the locations opened so far at or under r's.
func (r *reader) ListRepositories(context.Context) ([]string, error) {
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	var out []string
	for loc := range r.p.stores {
		if loc == r.loc || strings.HasPrefix(loc, r.loc+"/") {
			out = append(out, loc)
		}
	}
	slices.Sort(out)
	return out, nil
}

// writer is a write-mode endpoint: reader plus Destination and Deleter.
type writer struct{ *reader }

func (w *writer) HasBlob(_ context.Context, desc ocispec.Descriptor) (bool, error) {
	w.hangIf("has-blob")
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	_, ok := w.s.blobs[desc.Digest]
	return ok, nil
}

func (w *writer) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	if w.stallPut {
		<-ctx.Done()
		if w.abortMarker != "" {
			time.Sleep(300 * time.Millisecond)
			_ = os.WriteFile(filepath.Join(w.abortMarker, desc.Digest.Encoded()), nil, 0o644)
		}
		return ctx.Err()
	}
	if w.denyPut {
		return fmt.Errorf("%s: put blob %s: simulated refusal: %w", w.name, desc.Digest, core.ErrDenied)
	}
	b, err := io.ReadAll(content.NewVerifyReader(r, desc))
	if err != nil {
		return fmt.Errorf("%s: put blob %s: %w", w.name, desc.Digest, err)
	}
	w.s.mu.Lock()
	w.s.blobs[desc.Digest] = b
	w.s.mu.Unlock()
	return nil
}

// fileWriter is a writer that also takes blobs from local files.
type fileWriter struct{ *writer }

func (w *fileWriter) PutBlobFile(ctx context.Context, desc ocispec.Descriptor, path string) error {
	return w.PutBlobFileProgress(ctx, desc, path, nil)
}

func (w *fileWriter) PutBlobFileProgress(ctx context.Context, desc ocispec.Descriptor, path string, progress func(int64)) error {
	if w.stallPut {
		<-ctx.Done()
		return ctx.Err()
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: put blob %s: %w", w.name, desc.Digest, err)
	}
	defer f.Close()
	var r io.Reader = f
	if progress != nil {
		r = pluginapi.ProgressReader(f, 64<<10, progress)
	}
	return w.PutBlob(ctx, desc, r)
}

func (w *writer) PutManifest(_ context.Context, desc ocispec.Descriptor, raw []byte, ref string) error {
	if err := content.VerifyBytes(raw, desc); err != nil {
		return fmt.Errorf("%s: put manifest: %w", w.name, err)
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.manifests[desc.Digest] = manifest{desc: desc, raw: slices.Clone(raw)}
	if ref != "" && ref != desc.Digest.String() {
		w.s.tags[ref] = desc.Digest
	}
	return nil
}

func (w *writer) Delete(_ context.Context, ref string) error {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if _, ok := w.s.tags[ref]; ok {
		delete(w.s.tags, ref)
		return nil
	}
	if d, err := digest.Parse(ref); err == nil {
		if _, ok := w.s.manifests[d]; ok {
			delete(w.s.manifests, d)
			return nil
		}
	}
	return fmt.Errorf("%s: delete %q: %w", w.name, ref, core.ErrNotFound)
}

// faulty injects a failure or a stall after a number of bytes.
type faulty struct {
	ctx        context.Context
	r          io.Reader
	name       string
	desc       ocispec.Descriptor
	failAfter  int64
	stallAfter int64
	n          int64
}

func (f *faulty) Read(p []byte) (int, error) {
	limit := f.failAfter
	if f.stallAfter > 0 && (limit == 0 || f.stallAfter < limit) {
		limit = f.stallAfter
	}
	if f.n >= limit {
		if limit == f.stallAfter {
			<-f.ctx.Done()
			return 0, f.ctx.Err()
		}
		return 0, fmt.Errorf("%s: blob %s: simulated read failure after %d bytes: %w", f.name, f.desc.Digest, f.n, core.ErrUnavailable)
	}
	if int64(len(p)) > limit-f.n {
		p = p[:limit-f.n]
	}
	n, err := f.r.Read(p)
	f.n += int64(n)
	return n, err
}

// crasher kills the process once left bytes have been read: a plugin that
// dies in the middle of a blob.
type crasher struct {
	r    io.Reader
	left int64
}

func (c *crasher) Read(p []byte) (int, error) {
	if c.left <= 0 {
		os.Exit(3)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// pattern yields left bytes of a repeating pattern.
type pattern struct{ left int64 }

var block = func() []byte {
	b := make([]byte, 1<<20)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}()

func (p *pattern) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n := 0
	for n < len(b) {
		n += copy(b[n:], block)
	}
	p.left -= int64(n)
	return n, nil
}

// sigReader is a reader that also lists signatures.
type sigReader struct{ *reader }

func (r *sigReader) Signatures(_ context.Context, d digest.Digest) ([][]byte, error) {
	return r.s.signatures(d), nil
}

// sigWriter is a writer that also keeps signatures.
type sigWriter struct{ *writer }

func (w *sigWriter) Signatures(_ context.Context, d digest.Digest) ([][]byte, error) {
	return w.s.signatures(d), nil
}

func (w *sigWriter) PutSignatures(_ context.Context, d digest.Digest, sigs [][]byte) error {
	if err := pluginapi.CheckSignatures(sigs); err != nil {
		return fmt.Errorf("%s: signatures of %s: %w", w.name, d, err)
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.s.sigs == nil {
		w.s.sigs = map[digest.Digest][][]byte{}
	}
	kept := make([][]byte, 0, len(sigs))
	for _, sig := range sigs {
		kept = append(kept, slices.Clone(sig))
	}
	w.s.sigs[d] = kept
	return nil
}

func (s *store) signatures(d digest.Digest) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]byte, 0, len(s.sigs[d]))
	for _, sig := range s.sigs[d] {
		out = append(out, slices.Clone(sig))
	}
	return out
}
