package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/atomicfile"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/core/ref"
)

// acceptHeader lists every manifest type we read, most preferred first.
var acceptHeader = http.Header{"Accept": {strings.Join(manifest.Accept, ", ")}}

// parseRef splits a reference into a tag or a digest.
func parseRef(s string) (tag string, dgst digest.Digest, err error) {
	if s == "" {
		return "latest", "", nil
	}
	if strings.Contains(s, ":") {
		d, err := digest.Parse(s)
		if err != nil {
			return "", "", fmt.Errorf("reference %q is neither a tag nor a valid digest: %v: %w", s, err, core.ErrInvalid)
		}
		return "", d, nil
	}
	if !ref.ValidTag(s) {
		return "", "", fmt.Errorf("reference %q is not a valid tag: %w", s, core.ErrInvalid)
	}
	return s, "", nil
}

// contentType returns the media type of a response without parameters.
func contentType(resp *http.Response) string {
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

// Resolve implements pluginapi.Source: HEAD first (cheap, and not counted by
// Docker Hub's pull limit), GET when HEAD does not tell the digest, size and
// type. A digest reference is checked against what the registry serves.
func (e *endpoint) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	if len(e.mirrors) > 0 {
		d, _, err := e.resolveMirrored(ctx, ref, func(s *endpoint) (ocispec.Descriptor, []byte, error) {
			d, err := s.resolveHere(ctx, ref)
			return d, nil, err
		})
		return d, err
	}
	return e.resolveHere(ctx, ref)
}

// ResolveManifest implements pluginapi.ManifestResolver: one GET of the
// manifest by tag or digest, where Resolve sends a HEAD (which Docker Hub
// does not count as a pull) and the caller a GET after it.
func (e *endpoint) ResolveManifest(ctx context.Context, ref string) (ocispec.Descriptor, []byte, error) {
	if len(e.mirrors) > 0 {
		return e.resolveMirrored(ctx, ref, func(s *endpoint) (ocispec.Descriptor, []byte, error) {
			return s.resolveManifestHere(ctx, ref)
		})
	}
	return e.resolveManifestHere(ctx, ref)
}

func (e *endpoint) resolveManifestHere(ctx context.Context, ref string) (ocispec.Descriptor, []byte, error) {
	tag, want, err := parseRef(ref)
	if err != nil {
		return ocispec.Descriptor{}, nil, e.fail("resolve", err)
	}
	reference := tag
	if want != "" {
		reference = want.String()
	}
	return e.getResolved(e.scoped(ctx), "resolve "+reference, reference, want)
}

// getResolved GETs the manifest reference names and describes it from its
// bytes; want, when set, is the digest they must have.
func (e *endpoint) getResolved(ctx context.Context, step, reference string, want digest.Digest) (ocispec.Descriptor, []byte, error) {
	raw, mt, said, err := e.fetchManifest(ctx, reference, "")
	if err != nil {
		return ocispec.Descriptor{}, nil, e.fail(step, err)
	}
	if want == "" && said.Validate() == nil {
		// By tag: the bytes must be those the registry names (a manifest
		// changed in transit would otherwise be taken for another).
		want = said
	}
	alg := digest.Canonical
	if want != "" {
		alg = want.Algorithm()
	}
	d := alg.FromBytes(raw)
	if want != "" && d != want {
		return ocispec.Descriptor{}, nil, e.fail(step, &core.DigestMismatchError{Expected: want, Actual: d})
	}
	return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))}, raw, nil
}

// resolveHere resolves ref on this endpoint's registry.
func (e *endpoint) resolveHere(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	tag, want, err := parseRef(ref)
	if err != nil {
		return ocispec.Descriptor{}, e.fail("resolve", err)
	}
	reference := tag
	if want != "" {
		reference = want.String()
	}
	step := "resolve " + reference
	ctx = e.scoped(ctx)
	u, err := e.url(ctx, "/manifests/"+reference)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	resp, err := e.do(ctx, http.MethodHead, u, nil, 0, acceptHeader)
	if err != nil {
		return ocispec.Descriptor{}, e.fail(step, err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		mt := contentType(resp)
		served := digest.Digest(resp.Header.Get("Docker-Content-Digest"))
		d := want
		if d == "" && served.Validate() == nil {
			d = served
		}
		if want != "" && served != "" && served.Algorithm() == want.Algorithm() && served != want {
			return ocispec.Descriptor{}, e.fail(step, &core.DigestMismatchError{Expected: want, Actual: served})
		}
		if manifest.IsManifest(mt) && d != "" && resp.ContentLength > 0 && resp.ContentLength <= content.MaxManifestSize {
			return ocispec.Descriptor{MediaType: mt, Digest: d, Size: resp.ContentLength}, nil
		}
		if manifest.IsSchema1(mt) {
			return ocispec.Descriptor{}, e.fail(step, manifest.ErrSchema1)
		}
	case http.StatusNotFound:
		return ocispec.Descriptor{}, e.fail(step, fmt.Errorf("manifest %s not found: %w", reference, core.ErrNotFound))
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests:
		return ocispec.Descriptor{}, e.fail(step, statusError(resp))
	default:
		if resp.StatusCode >= 500 {
			return ocispec.Descriptor{}, e.fail(step, statusError(resp))
		}
	}
	// HEAD was not conclusive (no digest header, no length, an odd type or
	// an unusual status): GET the manifest and compute its descriptor.
	d, _, err := e.getResolved(ctx, step, reference, want)
	return d, err
}

// fetchManifest GETs a manifest (at most MaxManifestSize bytes) and returns
// its bytes, its media type (from Content-Type, or the body when the
// registry sends a generic type) and the digest the registry says it has
// (Docker-Content-Digest; "" when not sent). preferred goes first in
// Accept.
func (e *endpoint) fetchManifest(ctx context.Context, reference, preferred string) ([]byte, string, digest.Digest, error) {
	u, err := e.url(ctx, "/manifests/"+reference)
	if err != nil {
		return nil, "", "", err
	}
	accept := acceptHeader
	if preferred != "" && preferred != manifest.Accept[0] {
		accept = http.Header{"Accept": {preferred + ", " + acceptHeader.Get("Accept")}}
	}
	resp, err := e.do(ctx, http.MethodGet, u, nil, 0, accept)
	if err != nil {
		return nil, "", "", err
	}
	if resp.StatusCode == http.StatusNotFound {
		resp.Body.Close()
		return nil, "", "", fmt.Errorf("manifest %s not found: %w", reference, core.ErrNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", "", responseError(resp)
	}
	defer resp.Body.Close()
	if resp.ContentLength > content.MaxManifestSize {
		return nil, "", "", fmt.Errorf("manifest %s is %d bytes, over the %d byte limit: %w", reference, resp.ContentLength, content.MaxManifestSize, core.ErrTooLarge)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, content.MaxManifestSize+1))
	if err != nil {
		return nil, "", "", err
	}
	if len(raw) > content.MaxManifestSize {
		return nil, "", "", fmt.Errorf("manifest %s is over the %d byte limit: %w", reference, content.MaxManifestSize, core.ErrTooLarge)
	}
	mt := contentType(resp)
	if manifest.IsSchema1(mt) {
		return nil, "", "", manifest.ErrSchema1
	}
	if !manifest.IsManifest(mt) {
		detected, err := manifest.DetectMediaType(raw)
		if err != nil {
			return nil, "", "", err
		}
		if manifest.IsSchema1(detected) {
			return nil, "", "", manifest.ErrSchema1
		}
		mt = detected
	}
	return raw, mt, digest.Digest(resp.Header.Get("Docker-Content-Digest")), nil
}

// GetManifest implements pluginapi.Source. The bytes are checked against
// desc whatever headers the registry sent.
func (e *endpoint) GetManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if len(e.mirrors) > 0 {
		return fromSources(ctx, e, anyReadFailure, func(s *endpoint) ([]byte, error) { return s.getManifest(ctx, desc) })
	}
	return e.getManifest(ctx, desc)
}

func (e *endpoint) getManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	step := "get manifest " + desc.Digest.String()
	if err := desc.Digest.Validate(); err != nil {
		return nil, e.fail(step, fmt.Errorf("invalid digest: %v: %w", err, core.ErrInvalid))
	}
	ctx = e.scoped(ctx)
	raw, _, _, err := e.fetchManifest(ctx, desc.Digest.String(), desc.MediaType)
	if err != nil {
		return nil, e.fail(step, err)
	}
	check := desc
	if check.Size <= 0 {
		check.Size = int64(len(raw))
	}
	if err := content.VerifyBytes(raw, check); err != nil {
		return nil, e.fail(step, err)
	}
	return raw, nil
}

// GetBlob implements pluginapi.Source. It streams from offset; when the
// connection breaks it asks again with a Range header for the rest, up to
// MaxRetries times without progress.
func (e *endpoint) GetBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	if len(e.mirrors) > 0 {
		return fromSources(ctx, e, anyReadFailure, func(s *endpoint) (io.ReadCloser, error) { return s.getBlob(ctx, desc, offset) })
	}
	return e.getBlob(ctx, desc, offset)
}

func (e *endpoint) getBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	step := "get blob " + desc.Digest.String()
	if err := desc.Digest.Validate(); err != nil {
		return nil, e.fail(step, fmt.Errorf("invalid digest: %v: %w", err, core.ErrInvalid))
	}
	if offset < 0 || (desc.Size > 0 && offset > desc.Size) {
		return nil, e.fail(step, fmt.Errorf("offset %d outside the blob's %d bytes: %w", offset, desc.Size, core.ErrInvalid))
	}
	br := &blobReader{ctx: e.scoped(ctx), e: e, desc: desc, pos: offset, step: step}
	if desc.Size > 0 && offset == desc.Size {
		br.done = true
		return br, nil
	}
	if err := br.open(); err != nil {
		return nil, err
	}
	return br, nil
}

// GetBlobToFile implements pluginapi.BlobFileGetter: the blob is downloaded
// straight into the file the host names (a file an OCI layout staged),
// resuming with Range where the stream breaks, with the file's writeback
// started as it fills. The destination verifies the digest when it commits
// the file; the size is checked here.
func (e *endpoint) GetBlobToFile(ctx context.Context, desc ocispec.Descriptor, path string, progress func(written int64)) error {
	if len(e.mirrors) > 0 {
		// The next source may write the file only if this one did not.
		empty := func(err error) bool {
			fi, serr := os.Stat(path)
			return anyReadFailure(err) && serr == nil && fi.Size() == 0
		}
		_, err := fromSources(ctx, e, empty, func(s *endpoint) (struct{}, error) {
			return struct{}{}, s.getBlobToFile(ctx, desc, path, progress)
		})
		return err
	}
	return e.getBlobToFile(ctx, desc, path, progress)
}

func (e *endpoint) getBlobToFile(ctx context.Context, desc ocispec.Descriptor, path string, progress func(written int64)) error {
	step := "get blob " + desc.Digest.String() + " into " + path
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			// Not a file this process can write (another mount
			// namespace): the host streams the blob instead.
			err = fmt.Errorf("%v: %w", err, core.ErrUnsupported)
		}
		return e.fail(step, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
		return e.fail(step, fmt.Errorf("not an empty regular file: %w", core.ErrInvalid))
	}
	rc, err := e.getBlob(ctx, desc, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	w := atomicfile.NewWriteback(f)
	// One byte past the size is enough to tell a longer blob.
	bufp := copyBufPool.Get().(*[]byte)
	n, err := io.CopyBuffer(w, withProgress(io.LimitReader(rc, desc.Size+1), progress), *bufp)
	copyBufPool.Put(bufp)
	w.Wait()
	switch {
	case err != nil:
		return e.fail(step, err)
	case n != desc.Size:
		return e.fail(step, &core.SizeMismatchError{Digest: desc.Digest, Expected: desc.Size, Actual: n})
	}
	if err := f.Close(); err != nil {
		return e.fail(step, err)
	}
	return nil
}

// blobReader reads a blob and reopens it at the current offset when the
// stream breaks.
type blobReader struct {
	ctx  context.Context
	e    *endpoint
	desc ocispec.Descriptor
	step string

	body     io.ReadCloser
	pos      int64 // absolute offset of the next byte
	failures int   // consecutive failures without progress
	lastFail int64 // pos at the last failure
	done     bool
	closed   bool
}

func (b *blobReader) open() error {
	u, err := b.e.url(b.ctx, "/blobs/"+b.desc.Digest.String())
	if err != nil {
		return err
	}
	var hdr http.Header
	if b.pos > 0 {
		hdr = http.Header{"Range": {fmt.Sprintf("bytes=%d-", b.pos)}}
	}
	resp, err := b.e.do(b.ctx, http.MethodGet, u, nil, 0, hdr)
	if err != nil {
		return b.e.fail(b.step, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if b.pos > 0 {
			// The registry ignored Range: skip what we already have.
			if _, err := io.CopyN(io.Discard, resp.Body, b.pos); err != nil {
				resp.Body.Close()
				return b.e.fail(b.step, fmt.Errorf("skip to offset %d: %w", b.pos, err))
			}
		}
	case http.StatusPartialContent:
		start, ok := contentRangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != b.pos {
			resp.Body.Close()
			return b.e.fail(b.step, fmt.Errorf("asked for bytes from %d, got Content-Range %q: %w", b.pos, resp.Header.Get("Content-Range"), core.ErrInvalid))
		}
	case http.StatusNotFound:
		resp.Body.Close()
		return b.e.fail(b.step, fmt.Errorf("blob not found: %w", core.ErrNotFound))
	default:
		return b.e.fail(b.step, responseError(resp))
	}
	b.body = resp.Body
	return nil
}

// contentRangeStart parses "bytes START-END/TOTAL".
func contentRangeStart(v string) (int64, bool) {
	v = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), "bytes"))
	s, _, ok := strings.Cut(v, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	return n, err == nil
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errors.New("read of a closed blob stream")
	}
	if b.done {
		return 0, io.EOF
	}
	for {
		if b.body == nil {
			if err := b.open(); err != nil {
				return 0, err
			}
		}
		n, err := b.body.Read(p)
		b.pos += int64(n)
		if err == nil {
			return n, nil
		}
		if err == io.EOF && (b.desc.Size <= 0 || b.pos >= b.desc.Size) {
			b.done = true
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		b.body.Close()
		b.body = nil
		if cerr := b.ctx.Err(); cerr != nil {
			return n, b.e.fail(b.step, cerr)
		}
		if b.pos > b.lastFail {
			b.failures = 0
		}
		b.lastFail = b.pos
		b.failures++
		if b.failures > b.e.p.MaxRetries {
			return n, b.e.fail(b.step, fmt.Errorf("stream broke at byte %d %d times: %v: %w", b.pos, b.failures, err, core.ErrUnavailable))
		}
		if b.failures > 1 {
			t := time.NewTimer(backoff(b.failures-2, b.e.p.RetryBase, b.e.p.RetryMax))
			select {
			case <-b.ctx.Done():
				t.Stop()
				return n, b.e.fail(b.step, b.ctx.Err())
			case <-t.C:
			}
		}
		if n > 0 {
			return n, nil
		}
	}
}

// copyBufPool holds the buffers of blobReader.WriteTo.
var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// WriteTo copies the rest of the blob to w through a 1 MiB buffer: io.Copy
// into a socket would otherwise go through net's 32 KiB fallback buffer.
func (b *blobReader) WriteTo(w io.Writer) (int64, error) {
	bufp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bufp)
	buf := *bufp
	var total int64
	for {
		n, err := b.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
			if m < n {
				return total, io.ErrShortWrite
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (b *blobReader) Close() error {
	b.closed = true
	if b.body != nil {
		err := b.body.Close()
		b.body = nil
		return err
	}
	return nil
}

// ListTags implements pluginapi.TagLister, following Link pagination. A
// repository the registry does not know (NAME_UNKNOWN) is an error wrapping
// core.ErrNotFound, as skopeo, crane and regsync report it: a misspelt
// source must not read as an empty one. distribution 2.x answers so also for
// a repository holding only untagged manifests (the two cannot be told
// apart), which is why the message names both and why callers that write
// to the repository take not-found as no tags.
func (e *endpoint) ListTags(ctx context.Context) ([]string, error) {
	repo, err := e.repository(ctx)
	if err != nil {
		return nil, err
	}
	tags := []string{}
	err = repo.Tags(e.scoped(ctx), "", func(page []string) error {
		tags = append(tags, page...)
		return nil
	})
	if err != nil {
		var he *httpError
		if c := e.convert(err); errors.As(c, &he) && he.status == http.StatusNotFound && he.hasCode("NAME_UNKNOWN") {
			return nil, e.fail("list tags", fmt.Errorf("the registry does not know the repository (NAME_UNKNOWN: it does not exist, or holds no tagged image): %w", core.ErrNotFound))
		}
		return nil, e.fail("list tags", err)
	}
	return tags, nil
}

// Referrers implements pluginapi.ReferrerLister: the referrers API, or the
// tag-schema fallback (tag sha256-HEX) on registries without it.
func (e *endpoint) Referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	if len(e.mirrors) > 0 {
		return fromSources(ctx, e, anyReadFailure, func(s *endpoint) ([]ocispec.Descriptor, error) { return s.referrers(ctx, subject, artifactType) })
	}
	return e.referrers(ctx, subject, artifactType)
}

func (e *endpoint) referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	step := "list referrers of " + subject.String()
	if err := subject.Validate(); err != nil {
		return nil, e.fail(step, fmt.Errorf("invalid digest: %v: %w", err, core.ErrInvalid))
	}
	repo, err := e.repository(ctx)
	if err != nil {
		return nil, err
	}
	out := []ocispec.Descriptor{}
	err = repo.Referrers(e.scoped(ctx), ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: subject}, artifactType, func(page []ocispec.Descriptor) error {
		out = append(out, page...)
		return nil
	})
	if err != nil {
		return nil, e.fail(step, err)
	}
	return out, nil
}
