package host

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/ref"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// RegistryLimit bounds what one registry receives from a sync, so that a
// mirror run stays under the registry's rate limits. The unit is a
// transport operation: a manifest HEAD or GET, a blob check, download or
// upload, a mount, a tag list page set. Most are one HTTP request; a blob
// upload is two (POST, PUT) or more for chunked uploads, and the transport
// itself may retry a request (429 and 5xx, honouring Retry-After).
type RegistryLimit struct {
	// MaxConcurrent bounds the operations in flight at once; 0 means no
	// bound beyond --parallel and --jobs. A blob download holds its slot
	// only while the request is answered (for its duration when the plugin
	// writes the blob into a file itself), an upload for its duration.
	MaxConcurrent int `json:"maxConcurrent,omitempty" yaml:"max-concurrent,omitempty"`
	// RequestsPerSecond bounds the rate operations start; 0 means none.
	RequestsPerSecond float64 `json:"requestsPerSecond,omitempty" yaml:"requests-per-second,omitempty"`
	// Burst is how many operations may start at once after a quiet spell
	// (default: RequestsPerSecond rounded up, at least 1).
	Burst int `json:"burst,omitempty" yaml:"burst,omitempty"`
}

func (l RegistryLimit) zero() bool { return l.MaxConcurrent <= 0 && l.RequestsPerSecond <= 0 }

// registryOf names the registry an endpoint belongs to: the host of a
// docker:// location, "" for local transports.
func registryOf(ep ref.Endpoint) string {
	if ep.Transport != ref.Docker {
		return ""
	}
	host, _, _ := strings.Cut(ep.Location, "/")
	return registryKey(host)
}

// registryKey is the name one registry goes by whatever the spelling: host
// names in lower case, and Docker Hub's API host under its reference name
// (references already read index.docker.io as docker.io), so that a sync
// limit set for docker.io holds for registry-1.docker.io/... sources too,
// and copies between the two spellings mount.
func registryKey(host string) string {
	host = strings.ToLower(host)
	if host == "registry-1.docker.io" || host == "index.docker.io" {
		return "docker.io"
	}
	return host
}

// limiter enforces one RegistryLimit; it is shared by every endpoint of
// the registry in a sync run.
type limiter struct {
	sem chan struct{} // nil: no concurrency bound

	mu     sync.Mutex
	rate   float64 // tokens per second; 0: no rate bound
	burst  float64
	tokens float64
	last   time.Time
}

func newLimiter(l RegistryLimit) *limiter {
	lim := &limiter{}
	if l.MaxConcurrent > 0 {
		lim.sem = make(chan struct{}, l.MaxConcurrent)
	}
	if l.RequestsPerSecond > 0 {
		lim.rate = l.RequestsPerSecond
		lim.burst = float64(l.Burst)
		if lim.burst <= 0 {
			lim.burst = math.Max(1, math.Ceil(l.RequestsPerSecond))
		}
		lim.tokens = lim.burst
		lim.last = time.Now()
	}
	return lim
}

// acquire waits for a slot and a token. release must be called once.
func (l *limiter) acquire(ctx context.Context) (release func(), err error) {
	if l.rate > 0 {
		l.mu.Lock()
		now := time.Now()
		l.tokens = math.Min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
		l.last = now
		// Reserve a token now; a negative balance is the wait.
		l.tokens--
		wait := time.Duration(0)
		if l.tokens < 0 {
			wait = time.Duration(-l.tokens / l.rate * float64(time.Second))
		}
		l.mu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				l.mu.Lock()
				l.tokens++ // give the reservation back
				l.mu.Unlock()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
	}
	if l.sem == nil {
		return func() {}, nil
	}
	select {
	case l.sem <- struct{}{}:
		var once sync.Once
		return func() { once.Do(func() { <-l.sem }) }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// limitedEndpoint passes every operation of an endpoint through a limiter.
// It implements all optional interfaces; the host only calls those the
// wrapped endpoint advertised (endpoint.caps is kept).
type limitedEndpoint struct {
	inner pluginapi.Endpoint
	lim   *limiter
}

// limited returns a copy of e whose operations go through lim.
func limited(e *endpoint, lim *limiter) *endpoint {
	if lim == nil {
		return e
	}
	w := &limitedEndpoint{inner: e.Endpoint, lim: lim}
	out := *e
	out.Endpoint = w
	// Keep only the capabilities the wrapper can pass on: one added to the
	// contract later is then not used through it, rather than asserted on
	// a value that lacks it.
	out.caps = map[string]bool{}
	for c := range e.caps {
		if wrapperCaps[c] {
			out.caps[c] = true
		}
	}
	if e.Source != nil {
		out.Source = w
	}
	if e.Destination != nil {
		out.Destination = w
	}
	return &out
}

// wrapperCaps are the capabilities limitedEndpoint implements.
var wrapperCaps = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range pluginapi.Capabilities(&limitedEndpoint{}) {
		m[c] = true
	}
	return m
}()

var (
	_ pluginapi.BlobStager         = (*limitedEndpoint)(nil)
	_ pluginapi.Source             = (*limitedEndpoint)(nil)
	_ pluginapi.Destination        = (*limitedEndpoint)(nil)
	_ pluginapi.TagLister          = (*limitedEndpoint)(nil)
	_ pluginapi.RepositoryLister   = (*limitedEndpoint)(nil)
	_ pluginapi.ReferrerLister     = (*limitedEndpoint)(nil)
	_ pluginapi.Deleter            = (*limitedEndpoint)(nil)
	_ pluginapi.Mounter            = (*limitedEndpoint)(nil)
	_ pluginapi.Committer          = (*limitedEndpoint)(nil)
	_ pluginapi.BlobPather         = (*limitedEndpoint)(nil)
	_ pluginapi.FilePutter         = (*limitedEndpoint)(nil)
	_ pluginapi.FileProgressPutter = (*limitedEndpoint)(nil)
	_ pluginapi.BlobFileGetter     = (*limitedEndpoint)(nil)
	_ pluginapi.SignatureLister    = (*limitedEndpoint)(nil)
	_ pluginapi.SignatureWriter    = (*limitedEndpoint)(nil)
)

func unsupported(what string) error {
	return fmt.Errorf("endpoint does not implement %s: %w", what, core.ErrUnsupported)
}

func (l *limitedEndpoint) Close(ctx context.Context) error { return l.inner.Close(ctx) }

// limitedCall runs f on the wrapped endpoint as a T, holding one of the
// registry's slots; an endpoint that is no T says so.
func limitedCall[T, R any](ctx context.Context, l *limitedEndpoint, name string, f func(T) (R, error)) (R, error) {
	var zero R
	t, ok := l.inner.(T)
	if !ok {
		return zero, unsupported(name)
	}
	release, err := l.lim.acquire(ctx)
	if err != nil {
		return zero, err
	}
	defer release()
	return f(t)
}

// limitedDo is limitedCall for calls that return only an error.
func limitedDo[T any](ctx context.Context, l *limitedEndpoint, name string, f func(T) error) error {
	_, err := limitedCall(ctx, l, name, func(t T) (struct{}, error) { return struct{}{}, f(t) })
	return err
}

func (l *limitedEndpoint) Resolve(ctx context.Context, r string) (ocispec.Descriptor, error) {
	return limitedCall(ctx, l, "Resolve", func(s pluginapi.Source) (ocispec.Descriptor, error) { return s.Resolve(ctx, r) })
}

func (l *limitedEndpoint) GetManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	return limitedCall(ctx, l, "GetManifest", func(s pluginapi.Source) ([]byte, error) { return s.GetManifest(ctx, desc) })
}

// GetBlob holds a slot only while the download is opened: the stream may
// feed an upload to the same registry, which needs a slot of its own.
func (l *limitedEndpoint) GetBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	return limitedCall(ctx, l, "GetBlob", func(s pluginapi.Source) (io.ReadCloser, error) { return s.GetBlob(ctx, desc, offset) })
}

func (l *limitedEndpoint) HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	return limitedCall(ctx, l, "HasBlob", func(d pluginapi.Destination) (bool, error) { return d.HasBlob(ctx, desc) })
}

func (l *limitedEndpoint) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	return limitedDo(ctx, l, "PutBlob", func(d pluginapi.Destination) error { return d.PutBlob(ctx, desc, r) })
}

func (l *limitedEndpoint) PutManifest(ctx context.Context, desc ocispec.Descriptor, raw []byte, r string) error {
	return limitedDo(ctx, l, "PutManifest", func(d pluginapi.Destination) error { return d.PutManifest(ctx, desc, raw, r) })
}

func (l *limitedEndpoint) ListTags(ctx context.Context) ([]string, error) {
	return limitedCall(ctx, l, "ListTags", func(t pluginapi.TagLister) ([]string, error) { return t.ListTags(ctx) })
}

func (l *limitedEndpoint) ListRepositories(ctx context.Context) ([]string, error) {
	return limitedCall(ctx, l, "ListRepositories", func(t pluginapi.RepositoryLister) ([]string, error) { return t.ListRepositories(ctx) })
}

func (l *limitedEndpoint) Referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	return limitedCall(ctx, l, "Referrers", func(t pluginapi.ReferrerLister) ([]ocispec.Descriptor, error) {
		return t.Referrers(ctx, subject, artifactType)
	})
}

func (l *limitedEndpoint) Delete(ctx context.Context, r string) error {
	return limitedDo(ctx, l, "Delete", func(t pluginapi.Deleter) error { return t.Delete(ctx, r) })
}

func (l *limitedEndpoint) MountBlob(ctx context.Context, desc ocispec.Descriptor, from string) (bool, error) {
	return limitedCall(ctx, l, "MountBlob", func(t pluginapi.Mounter) (bool, error) { return t.MountBlob(ctx, desc, from) })
}

func (l *limitedEndpoint) Signatures(ctx context.Context, m digest.Digest) ([][]byte, error) {
	return limitedCall(ctx, l, "Signatures", func(t pluginapi.SignatureLister) ([][]byte, error) { return t.Signatures(ctx, m) })
}

func (l *limitedEndpoint) PutSignatures(ctx context.Context, m digest.Digest, sigs [][]byte) error {
	return limitedDo(ctx, l, "PutSignatures", func(t pluginapi.SignatureWriter) error { return t.PutSignatures(ctx, m, sigs) })
}

// Commit, BlobPath and the staging calls are local: not limited.

func (l *limitedEndpoint) Commit(ctx context.Context) error {
	t, ok := l.inner.(pluginapi.Committer)
	if !ok {
		return unsupported("Commit")
	}
	return t.Commit(ctx)
}

func (l *limitedEndpoint) BlobPath(ctx context.Context, desc ocispec.Descriptor) (string, error) {
	t, ok := l.inner.(pluginapi.BlobPather)
	if !ok {
		return "", unsupported("BlobPath")
	}
	return t.BlobPath(ctx, desc)
}

// PutBlobFile and PutBlobFileProgress are uploads to the registry (from a
// local file the plugin reads): limited like PutBlob.
func (l *limitedEndpoint) PutBlobFile(ctx context.Context, desc ocispec.Descriptor, path string) error {
	return limitedDo(ctx, l, "PutBlobFile", func(t pluginapi.FilePutter) error { return t.PutBlobFile(ctx, desc, path) })
}

func (l *limitedEndpoint) PutBlobFileProgress(ctx context.Context, desc ocispec.Descriptor, path string, progress func(sent int64)) error {
	return limitedDo(ctx, l, "PutBlobFileProgress", func(t pluginapi.FileProgressPutter) error { return t.PutBlobFileProgress(ctx, desc, path, progress) })
}

// GetBlobToFile is a download from the registry, written by the plugin: it
// holds its slot for the whole transfer.
func (l *limitedEndpoint) GetBlobToFile(ctx context.Context, desc ocispec.Descriptor, path string, progress func(written int64)) error {
	return limitedDo(ctx, l, "GetBlobToFile", func(t pluginapi.BlobFileGetter) error { return t.GetBlobToFile(ctx, desc, path, progress) })
}

func (l *limitedEndpoint) StageBlob(ctx context.Context, desc ocispec.Descriptor) (string, error) {
	t, ok := l.inner.(pluginapi.BlobStager)
	if !ok {
		return "", unsupported("StageBlob")
	}
	return t.StageBlob(ctx, desc)
}

func (l *limitedEndpoint) CommitStagedBlob(ctx context.Context, desc ocispec.Descriptor, path string) error {
	t, ok := l.inner.(pluginapi.BlobStager)
	if !ok {
		return unsupported("CommitStagedBlob")
	}
	return t.CommitStagedBlob(ctx, desc, path)
}

func (l *limitedEndpoint) AbortStagedBlob(ctx context.Context, path string) error {
	t, ok := l.inner.(pluginapi.BlobStager)
	if !ok {
		return unsupported("AbortStagedBlob")
	}
	return t.AbortStagedBlob(ctx, path)
}
