package host

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/atomicfile"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/core/platform"
	"github.com/stevedore-oci/stevedore/core/ref"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// CopyOptions tune Copy.
type CopyOptions struct {
	// All copies every image of an index and the index byte-for-byte.
	All bool
	// Platforms selects images of an index. One platform copies that image
	// alone (as skopeo does); several copy a new index holding just them.
	// Empty (and All false) means the host's platform. An image that is no
	// index is checked against them: one whose config names a platform
	// that is not every platform asked for is refused (a sync takes it if
	// it is one of them), as an index lacking one is; one whose config
	// names no platform (an artifact, a signature) is copied as it is.
	Platforms []ocispec.Platform
	// PlatformsPickOnly makes Platforms pick from an index alone, as
	// skopeo's --override-os and --override-arch do: an image that is no
	// index is copied whatever its platform.
	PlatformsPickOnly bool
	// Jobs bounds concurrent blob transfers (default 4).
	Jobs int
	// SrcOptions and DstOptions are handed to the transports (credentials,
	// TLS settings).
	SrcOptions, DstOptions map[string]string
	// Progress, if set, receives events as blobs move.
	Progress func(Event)
	// StreamOnly moves every blob's bytes through the host even where the
	// destination could mount or link it (for measurements).
	StreamOnly bool
	// RemoveSignatures leaves the manifests' signatures behind without
	// reading them (skopeo's --remove-signatures). Otherwise a manifest's
	// signatures are copied when the source lists them (capability
	// "signatures") and the destination stores them ("put-signatures");
	// when it cannot, they are dropped and Copy logs one warning saying how
	// many. (skopeo refuses such a copy instead; we warn, as the image
	// itself arrives intact and many destinations never hold signatures.)
	RemoveSignatures bool
	// Force writes every manifest, and every blob the destination lacks,
	// even when it already holds the image under the destination reference
	// (by default such a copy writes nothing; use Force to repair a
	// destination whose blobs were removed behind its back). A blob the
	// destination has is not rewritten.
	Force bool
	// Retries is how many more times the copy is tried after a failure
	// that may pass (core.ErrUnavailable: 429, 5xx, broken connections,
	// once the transport's own retries are spent), as
	// skopeo's --retry-times. Each try skips the blobs the previous ones
	// stored. RetryDelay is the first wait (default 1 s), doubled for each
	// try; OnRetry, if set, hears of each.
	Retries    int
	RetryDelay time.Duration
	OnRetry    func(attempt int, wait time.Duration, err error)
	// Format writes every manifest in this format (skopeo's --format):
	// manifest.FormatOCI or manifest.FormatDocker; blobs keep their
	// digests, converted manifests get new ones. "" keeps each manifest as
	// it is, unless the destination refuses its type: then the image is
	// written in the other format and Copy logs one warning.
	Format manifest.Format
	// PreserveDigests refuses any change to a manifest (skopeo's
	// --preserve-digests): no conversion, asked for or not.
	PreserveDigests bool
}

// CopyResult summarises a finished copy.
type CopyResult struct {
	// Descriptor of the top-level manifest or index written.
	Descriptor ocispec.Descriptor
	// Source and destination as parsed.
	Source, Destination ref.Endpoint
	BlobsCopied         int
	BlobsSkipped        int
	BlobsMounted        int
	BytesCopied         int64
	Manifests           int
	// SignaturesCopied counts the signatures stored at the destination;
	// SignaturesDropped those the source had but the destination cannot
	// store (never counted with RemoveSignatures).
	SignaturesCopied  int
	SignaturesDropped int
	Duration          time.Duration
	// UpToDate says the destination already held the image under the
	// destination reference: nothing was written.
	UpToDate bool
	// Converted is the format the manifests were converted to ("" when
	// written as the source has them).
	Converted manifest.Format
}

// Copy copies one image (or index) from src to dst, both endpoint strings
// such as "oci:/srv/layout:v1" or "docker://registry/repo:tag". Blobs are
// verified before they become visible: in the host as they pass, or by the
// destination as it commits bytes that skipped the host (link, upload from
// a file, download into a staged file, copy inside one plugin). Children
// are written before parents and the tag last, so an interrupted copy never
// leaves a tag pointing at missing content.
func (h *Host) Copy(ctx context.Context, src, dst string, opts CopyOptions) (*CopyResult, error) {
	srcEP, err := h.ParseEndpoint(ctx, src)
	if err != nil {
		return nil, err
	}
	dstEP, err := h.ParseEndpoint(ctx, dst)
	if err != nil {
		return nil, err
	}
	return h.CopyEndpoints(ctx, srcEP, dstEP, opts)
}

// CopyEndpoints is Copy with parsed endpoints.
func (h *Host) CopyEndpoints(ctx context.Context, srcEP, dstEP ref.Endpoint, opts CopyOptions) (*CopyResult, error) {
	if err := dstEP.Unambiguous("destination"); err != nil {
		return nil, err
	}
	if opts.Format == manifest.FormatOCI && dstEP.Transport == ref.DockerArchive {
		return nil, fmt.Errorf("%s: a docker-archive holds Docker schema 2 images only, not OCI: %w", dstEP, core.ErrUnsupported)
	}
	start := time.Now()
	delay := cmp.Or(opts.RetryDelay, time.Second)
	for attempt := 1; ; attempt++ {
		res, err := h.copyOnce(ctx, srcEP, dstEP, opts)
		if err == nil {
			res.Duration = time.Since(start)
			return res, nil
		}
		if attempt > opts.Retries || !errors.Is(err, core.ErrUnavailable) || ctx.Err() != nil {
			return nil, err
		}
		if opts.OnRetry != nil {
			opts.OnRetry(attempt, delay, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
		delay *= 2
	}
}

// copyOnce is one try of CopyEndpoints.
func (h *Host) copyOnce(ctx context.Context, srcEP, dstEP ref.Endpoint, opts CopyOptions) (*CopyResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, d, err := h.openPair(ctx, srcEP, dstEP, opts.SrcOptions, opts.DstOptions)
	if err != nil {
		return nil, err
	}
	defer s.Close(context.WithoutCancel(ctx))
	defer d.Close(context.WithoutCancel(ctx))
	c := newCopier(s, d, opts)
	c.logger = h.logger
	res, err := c.copyImage(ctx, srcEP.Ref, dstEP.Ref)
	if err != nil {
		return nil, fmt.Errorf("copy %s to %s: %w", srcEP, dstEP, err)
	}
	res.Source, res.Destination = srcEP, dstEP
	if res.SignaturesDropped > 0 {
		h.logger.Warn(droppedWarning(res.SignaturesDropped, srcEP, dstEP))
	}
	return res, nil
}

// openPair opens a copy's source, then its destination (a destination
// opened for writing may be created: not before the source is known
// good). The destination's plugin, when not running yet, starts while the
// source's plugin starts and opens.
func (h *Host) openPair(ctx context.Context, srcEP, dstEP ref.Endpoint, srcOpts, dstOpts map[string]string) (src, dst *endpoint, err error) {
	started := h.prelaunch(ctx, dstEP.Transport)
	src, err = h.open(ctx, srcEP, pluginapi.ModeRead, srcOpts)
	<-started
	if err != nil {
		return nil, nil, err
	}
	dst, err = h.open(ctx, dstEP, pluginapi.ModeWrite, dstOpts)
	if err != nil {
		src.Close(context.WithoutCancel(ctx))
		return nil, nil, err
	}
	return src, dst, nil
}

// prelaunch starts the plugin serving transport in the background; the
// channel is closed when it is up or failed (the failure is reported by
// whoever opens the transport).
func (h *Host) prelaunch(ctx context.Context, transport string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.servedBy(ctx, transport)
	}()
	return done
}

// copier copies between two open endpoints. One copier may copy several
// images (sync); blobs already handled are remembered.
type copier struct {
	src, dst *endpoint
	opts     CopyOptions
	emit     func(Event)
	sem      chan struct{}

	done     onceEach[digest.Digest, struct{}]
	children onceEach[childKey, ocispec.Descriptor]
	stats    struct {
		copied, skipped, mounted, manifests atomic.Int64
		sigsCopied, sigsDropped             atomic.Int64
	}
	bytes  atomic.Int64
	logger hclog.Logger // nil: no warnings
	// share, when set (sync), moves each blob once per destination
	// registry across copiers and mounts it where it already is.
	share *blobShare
	// commitLater (sync) leaves a Committer destination uncommitted after
	// each image: the job commits it once, when all its images are in (an
	// archive is written once).
	commitLater bool
	// subsetPlatforms (sync) copies the platforms of a --platform list an
	// index has and skips the ones it lacks; a copy refuses an index
	// lacking any platform asked for.
	subsetPlatforms bool
	// root is the source's top-level manifest when it came with the
	// resolve (ResolveManifest), so it is not fetched again.
	root *manifest.Manifest
	// learned is the format a destination's refusal of a manifest's type
	// taught this copier (nil: none).
	learned atomic.Pointer[manifest.Format]
	// converted says a manifest was written in another format than the
	// source's.
	converted atomic.Bool
}

// onceEach runs a piece of work once per key among concurrent callers: a
// caller finding it under way waits for its result. A failure is forgotten,
// so that a later caller (or a retry) runs it again, and so does a caller
// whose wait ended in another's failure, which may be only that the other
// caller was cancelled (its error is not this one's).
type onceEach[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]*onceResult[V]
}

type onceResult[V any] struct {
	once sync.Once
	v    V
	err  error
}

func (e *onceEach[K, V]) do(ctx context.Context, key K, work func() (V, error)) (V, error) {
	for {
		e.mu.Lock()
		if e.m == nil {
			e.m = map[K]*onceResult[V]{}
		}
		o, ok := e.m[key]
		if !ok {
			o = &onceResult[V]{}
			e.m[key] = o
		}
		e.mu.Unlock()
		ran := false
		o.once.Do(func() {
			ran = true
			o.v, o.err = work()
		})
		if o.err == nil {
			return o.v, nil
		}
		e.mu.Lock()
		if e.m[key] == o {
			delete(e.m, key)
		}
		e.mu.Unlock()
		if ran || ctx.Err() != nil {
			return o.v, o.err
		}
	}
}

func newCopier(src, dst *endpoint, opts CopyOptions) *copier {
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = 4
	}
	emit := opts.Progress
	if emit == nil {
		emit = func(Event) {}
	}
	return &copier{src: src, dst: dst, opts: opts, emit: emit, sem: make(chan struct{}, jobs)}
}

func (c *copier) copyImage(ctx context.Context, srcRef, dstRef string) (*CopyResult, error) {
	// Ask the destination what it holds under dstRef while the source
	// resolves: one HEAD each on registries.
	var (
		held digest.Digest
		wg   sync.WaitGroup
	)
	if c.checksHeld(dstRef) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d, err := c.dst.Source.Resolve(ctx, dstRef); err == nil {
				held = d.Digest
			}
		}()
	}
	var (
		root ocispec.Descriptor
		err  error
	)
	if c.checksHeld(dstRef) {
		// The copy may stop at the digest: a HEAD on a registry, which
		// Docker Hub does not count as a pull.
		root, err = c.src.Resolve(ctx, srcRef)
		err = c.src.wrap("resolve "+quote(srcRef), err)
	} else {
		// The manifest is read whatever it is: with the resolve, one GET.
		root, c.root, err = resolveManifest(ctx, c.src, srcRef)
	}
	wg.Wait()
	if err != nil {
		return nil, err
	}
	return c.copyConverting(ctx, root, dstRef, c.opts.All, held)
}

// copyConverting is copyResolved in the copy's format: the one asked for,
// else the one a refusal taught this copier, else none. When the
// destination refuses a manifest's type and the copy may change manifests,
// the image is written in the other format (skopeo does too), which
// later copies of this copier (sync) then use from the start. Blobs
// already sent are not sent again.
func (c *copier) copyConverting(ctx context.Context, root ocispec.Descriptor, dstRef string, all bool, held digest.Digest) (*CopyResult, error) {
	f := c.startFormat()
	res, err := c.copyResolved(withFormat(ctx, f), root, dstRef, all, held)
	if alt := c.fallbackFormat(err, root, f); alt != "" {
		first := err
		if res, err = c.copyResolved(withFormat(ctx, alt), root, dstRef, all, held); err != nil {
			err = fmt.Errorf("%w; and as %s: %w", first, formatName(alt), err)
		} else if c.learned.CompareAndSwap(nil, &alt) && c.logger != nil {
			// Learned only once the other format is taken: a refusal of
			// both was not about the type (MANIFEST_INVALID is broad), and
			// must not change the digests of the job's other images.
			c.logger.Warn(fmt.Sprintf("%s refused a manifest as %s; writing images as %s, under new digests (--format sets the format, --preserve-digests refuses instead)",
				c.dst.ep, formatName(alt.Other()), formatName(alt)))
		}
	}
	if err != nil && c.opts.PreserveDigests && errors.Is(err, core.ErrManifestRejected) {
		err = fmt.Errorf("%w (--preserve-digests: not written in the other format)", err)
	}
	return res, err
}

// formatKey carries the format of one copy attempt in its context: a
// copier shared by a sync's images may learn a format while others are
// being written, each of which keeps the one it started with.
type formatKey struct{}

func withFormat(ctx context.Context, f manifest.Format) context.Context {
	return context.WithValue(ctx, formatKey{}, f)
}

// formatIn is the format manifests of the copy ctx belongs to are written
// in ("" as they are).
func formatIn(ctx context.Context) manifest.Format {
	f, _ := ctx.Value(formatKey{}).(manifest.Format)
	return f
}

// startFormat is the format a copy starts in: CopyOptions.Format, else the
// one a destination's refusal taught this copier.
func (c *copier) startFormat() manifest.Format {
	if c.opts.Format != "" {
		return c.opts.Format
	}
	if f := c.learned.Load(); f != nil {
		return *f
	}
	return ""
}

// fallbackFormat returns the format to write an image in after err, when
// err is the destination refusing its manifest's type and the copy, made
// in format f, may change the manifest; "" otherwise.
func (c *copier) fallbackFormat(err error, root ocispec.Descriptor, f manifest.Format) manifest.Format {
	if err == nil || !errors.Is(err, core.ErrManifestRejected) || f != "" || c.opts.PreserveDigests {
		return ""
	}
	// The refused manifest's type names the format to leave (an index
	// may hold manifests of the other format than its own).
	refused := root.MediaType
	var tr *typeRefused
	if errors.As(err, &tr) {
		refused = tr.mediaType
	}
	if rf := manifest.FormatOf(refused); rf != "" {
		return rf.Other()
	}
	return ""
}

func formatName(f manifest.Format) string {
	switch f {
	case manifest.FormatOCI:
		return "OCI"
	case manifest.FormatDocker:
		return "Docker schema 2"
	}
	return string(f)
}

// convert returns m in the copy's format (m itself when there is none, or
// m is in it already). entries, for an index, are its entries as written.
func (c *copier) convert(ctx context.Context, m *manifest.Manifest, entries []ocispec.Descriptor) (*manifest.Manifest, error) {
	f := formatIn(ctx)
	if f == "" {
		return m, nil
	}
	out, err := manifest.Convert(m, f, entries)
	if err != nil {
		return nil, err
	}
	return c.accept(m, out, f)
}

// accept takes out, m converted to format f, refusing a change under
// PreserveDigests, and records that the copy converted.
func (c *copier) accept(m, out *manifest.Manifest, f manifest.Format) (*manifest.Manifest, error) {
	if out == m {
		return m, nil
	}
	if c.opts.PreserveDigests {
		return nil, fmt.Errorf("manifest %s: writing it as %s changes its digest, which --preserve-digests forbids: %w", m.Digest, formatName(f), core.ErrUnsupported)
	}
	c.converted.Store(true)
	return out, nil
}

// plan returns m as the copy will write it in its format (see planned),
// refusing a change under PreserveDigests.
func (c *copier) plan(ctx context.Context, m *manifest.Manifest) (*manifest.Manifest, error) {
	f := formatIn(ctx)
	if f == "" {
		return m, nil
	}
	out, err := c.planned(ctx, m, f)
	if err != nil {
		return nil, err
	}
	return c.accept(m, out, f)
}

// planned returns m as a copy in format f would write it, reading the
// child manifests of an index that need converting; nothing is written.
func (c *copier) planned(ctx context.Context, m *manifest.Manifest, f manifest.Format) (*manifest.Manifest, error) {
	if !m.IsIndex() {
		return manifest.Convert(m, f, nil)
	}
	ctx = withFormat(ctx, f)
	entries := slices.Clone(m.Manifests)
	for i, e := range entries {
		if !manifest.IsManifest(e.MediaType) || !needsConversion(ctx, e.MediaType) {
			continue
		}
		child, err := c.fetchManifest(ctx, e)
		if err != nil {
			return nil, err
		}
		conv, err := c.planned(ctx, child, f)
		if err != nil {
			return nil, err
		}
		entries[i] = conv.Descriptor()
	}
	return manifest.Convert(m, f, entries)
}

// needsConversion reports whether a manifest of type mt may be rewritten:
// it is not in the copy's format, or it is an index (its entries may be).
func needsConversion(ctx context.Context, mt string) bool {
	f := formatIn(ctx)
	return f != "" && (manifest.IsIndex(mt) || manifest.FormatOf(mt) != f)
}

// checksHeld reports whether a copy to dstRef first asks what the
// destination holds there, to do nothing when it is the image already (as
// crane does): only for a named reference, on destinations that can be read
// back and are not written whole at the end (archives).
func (c *copier) checksHeld(dstRef string) bool {
	return !c.opts.Force && dstRef != "" && c.dst.has(pluginapi.CapSource) && !c.dst.has(pluginapi.CapCommit)
}

// copyResolved copies the image or index root (already resolved at the
// source) to dstRef. all overrides CopyOptions.All (sync copies referrers
// whole). held, if set, is the digest the destination holds under dstRef:
// when it is the one the copy would write, and no signature is to be
// copied, nothing is written. A destination holding a manifest holds what
// it references (registries check, and every transport writes children
// first).
func (c *copier) copyResolved(ctx context.Context, root ocispec.Descriptor, dstRef string, all bool, held digest.Digest) (*CopyResult, error) {
	// An image is checked against the platforms asked for before it can
	// be found up to date.
	imagePlatform := c.checksImagePlatform(all)
	if held != "" && held == root.Digest && (all || (manifest.IsImageManifest(root.MediaType) && !imagePlatform)) && !needsConversion(ctx, root.MediaType) {
		// The destination holds the source's manifest, and no platform
		// is to be picked from it: up to date without fetching it.
		if res, err := c.upToDate(ctx, root, dstRef); res != nil || err != nil {
			return res, err
		}
		held = "" // signatures to copy: the copy goes on, no need to ask again
	}
	m, err := c.fetchManifest(ctx, root)
	if err != nil {
		return nil, err
	}
	top := m
	if m.IsIndex() && !all {
		top, err = c.selectPlatforms(ctx, m)
		if err != nil {
			return nil, err
		}
	} else if imagePlatform {
		if err := c.checkPlatform(ctx, m); err != nil {
			return nil, err
		}
	}
	if top.IsIndex() && c.dst.ep.Transport == ref.DockerArchive {
		// Refused before any child is written (the plugin would refuse
		// the index only after them).
		return nil, fmt.Errorf("%s: a docker-archive holds single-platform images, not the index %s: pick one platform (--platform, or no --all): %w",
			c.dst.ep, top.Digest, core.ErrUnsupported)
	}
	desc := top.Descriptor()
	if top == m {
		desc = root
		desc.MediaType = m.MediaType
	}
	// The source's digest: signatures are of it.
	srcDigest := desc.Digest
	if needsConversion(ctx, top.MediaType) {
		// What the destination is to hold, planned before anything is
		// written (an index's entries are read and converted in memory):
		// a conversion that cannot be done fails first, and a destination
		// holding the result already is up to date.
		ctx = withManifestCache(ctx)
		want, err := c.plan(ctx, top)
		if err != nil {
			return nil, err
		}
		if want != top {
			desc = want.Descriptor()
			if !top.IsIndex() {
				top = want // copyTree converts an index's entries itself
			}
		}
	}
	tag := dstRef
	if tag == "" || ref.IsDigest(tag) {
		// No tag: record the image by its digest.
		if tag != "" && tag != desc.Digest.String() {
			return nil, fmt.Errorf("destination names digest %s but the copied image is %s: %w", tag, desc.Digest, core.ErrDigestMismatch)
		}
		tag = desc.Digest.String()
	}
	if held != "" && held == desc.Digest {
		if res, err := c.upToDate(ctx, desc, dstRef); res != nil || err != nil {
			return res, err
		}
	}
	written, err := c.copyTree(ctx, top)
	if err != nil {
		return nil, err
	}
	if written != top {
		top, desc = written, written.Descriptor()
	}
	sigs, err := c.signaturesOf(ctx, srcDigest, desc.Digest)
	if err != nil {
		return nil, err
	}
	if len(sigs) > 0 {
		// Signatures need their manifest; the tag comes last, so a tagged
		// image is a signed one.
		if err := c.putManifest(ctx, plainDesc(desc), top.Raw, ""); err != nil {
			return nil, err
		}
		if err := c.putSignatures(ctx, desc.Digest, sigs); err != nil {
			return nil, err
		}
	}
	if err := c.putManifest(ctx, plainDesc(desc), top.Raw, tag); err != nil {
		return nil, err
	}
	c.stats.manifests.Add(1)
	c.emit(Event{Kind: ManifestDone, Desc: desc, Ref: tag})
	if c.dst.has(pluginapi.CapCommit) && !c.commitLater {
		if err := c.dst.Endpoint.(pluginapi.Committer).Commit(ctx); err != nil {
			return nil, c.dst.wrap("commit", err)
		}
		// A format that stores the image its own way (docker-archive keeps
		// layers uncompressed) holds another manifest than the one sent:
		// report what it holds, read back.
		if held, ok := c.readBack(ctx, dstRef); ok && held.Digest != desc.Digest {
			desc = held
		}
	}
	return &CopyResult{
		Descriptor:        plainDesc(desc),
		BlobsCopied:       int(c.stats.copied.Load()),
		BlobsSkipped:      int(c.stats.skipped.Load()),
		BlobsMounted:      int(c.stats.mounted.Load()),
		BytesCopied:       c.bytes.Load(),
		Manifests:         int(c.stats.manifests.Load()),
		SignaturesCopied:  int(c.stats.sigsCopied.Load()),
		SignaturesDropped: int(c.stats.sigsDropped.Load()),
		Converted:         c.convertedTo(ctx),
	}, nil
}

// convertedTo is the format manifests were converted to, if any was.
func (c *copier) convertedTo(ctx context.Context) manifest.Format {
	if c.converted.Load() {
		return formatIn(ctx)
	}
	return ""
}

// readBack resolves ref in what a committed destination holds, opening it
// again for reading (false when it cannot be read back).
func (c *copier) readBack(ctx context.Context, ref string) (ocispec.Descriptor, bool) {
	if c.dst.owner == nil {
		return ocispec.Descriptor{}, false
	}
	ep := c.dst.ep
	e, err := c.dst.owner.Open(ctx, pluginapi.OpenRequest{Transport: ep.Transport, Location: ep.Location, Mode: pluginapi.ModeRead, Options: c.opts.DstOptions})
	if err != nil {
		return ocispec.Descriptor{}, false
	}
	defer e.Close(context.WithoutCancel(ctx))
	src, ok := e.(pluginapi.Source)
	if !ok {
		return ocispec.Descriptor{}, false
	}
	d, err := src.Resolve(ctx, ref)
	return plainDesc(d), err == nil
}

// putManifest writes a manifest at the destination. A refusal of its type
// says which type was refused, for the copy to write the image in the other
// format.
func (c *copier) putManifest(ctx context.Context, desc ocispec.Descriptor, raw []byte, ref string) error {
	err := c.dst.PutManifest(ctx, desc, raw, ref)
	if err == nil {
		return nil
	}
	err = c.dst.wrap("put manifest "+desc.Digest.String(), err)
	if errors.Is(err, core.ErrManifestRejected) {
		return &typeRefused{mediaType: desc.MediaType, err: err}
	}
	return err
}

// typeRefused is the destination refusing a manifest of mediaType.
type typeRefused struct {
	mediaType string
	err       error
}

func (e *typeRefused) Error() string { return e.err.Error() }
func (e *typeRefused) Unwrap() error { return e.err }

// upToDate returns the result of a copy of desc to dstRef, which the
// destination holds already: nil when signatures are to be copied along
// (the copy goes on).
func (c *copier) upToDate(ctx context.Context, desc ocispec.Descriptor, dstRef string) (*CopyResult, error) {
	sigs, err := c.signatures(ctx, desc.Digest)
	if err != nil || len(sigs) > 0 {
		return nil, err
	}
	c.emit(Event{Kind: ManifestDone, Desc: desc, Ref: dstRef})
	return &CopyResult{Descriptor: plainDesc(desc), UpToDate: true}, nil
}

// signatures returns the signatures of manifest d to copy: none when they
// are removed, when the source keeps none, or when the destination cannot
// store them (then they are counted as dropped).
func (c *copier) signatures(ctx context.Context, d digest.Digest) ([][]byte, error) {
	if c.opts.RemoveSignatures || !c.src.has(pluginapi.CapSignatures) {
		return nil, nil
	}
	sl, ok := c.src.Endpoint.(pluginapi.SignatureLister)
	if !ok {
		return nil, nil
	}
	sigs, err := sl.Signatures(ctx, d)
	if err != nil {
		return nil, c.src.wrap("signatures of "+d.String(), err)
	}
	if err := pluginapi.CheckSignatures(sigs); err != nil {
		return nil, c.src.wrap("signatures of "+d.String(), err)
	}
	if len(sigs) > 0 && !c.dst.has(pluginapi.CapPutSignatures) {
		c.stats.sigsDropped.Add(int64(len(sigs)))
		return nil, nil
	}
	return sigs, nil
}

// putSignatures stores the signatures of manifest d, already written.
func (c *copier) putSignatures(ctx context.Context, d digest.Digest, sigs [][]byte) error {
	sw, ok := c.dst.Endpoint.(pluginapi.SignatureWriter)
	if !ok {
		return c.dst.wrap("put signatures of "+d.String(), fmt.Errorf("endpoint does not implement PutSignatures: %w", core.ErrUnsupported))
	}
	if err := sw.PutSignatures(ctx, d, sigs); err != nil {
		return c.dst.wrap("put signatures of "+d.String(), err)
	}
	c.stats.sigsCopied.Add(int64(len(sigs)))
	return nil
}

// signaturesOf returns the signatures of source manifest src to copy to
// the destination's manifest dst: none when there are none, an error when
// there are some and the manifest was converted (dst differs): they sign
// src's bytes, which the destination does not hold.
func (c *copier) signaturesOf(ctx context.Context, src, dst digest.Digest) ([][]byte, error) {
	sigs, err := c.signatures(ctx, src)
	if err != nil || len(sigs) == 0 || src == dst {
		return sigs, err
	}
	return nil, fmt.Errorf("manifest %s has %d signature(s), which writing it as %s (%s) would invalidate: use --remove-signatures, or copy it as it is: %w",
		src, len(sigs), formatName(formatIn(ctx)), dst, core.ErrUnsupported)
}

// copySignatures copies the signatures of source manifest src, written at
// the destination as dst.
func (c *copier) copySignatures(ctx context.Context, src, dst digest.Digest) error {
	sigs, err := c.signaturesOf(ctx, src, dst)
	if err != nil || len(sigs) == 0 {
		return err
	}
	return c.putSignatures(ctx, dst, sigs)
}

// droppedWarning is the one line logged when a copy left signatures behind.
func droppedWarning(n int, src, dst ref.Endpoint) string {
	return fmt.Sprintf("dropped %d signature(s) of %s: %s cannot store signatures (--remove-signatures skips them without this warning)",
		n, src, dst)
}

func quote(r string) string {
	if r == "" {
		return "(default)"
	}
	return r
}

// plainDesc keeps what identifies content, dropping index-entry details.
func plainDesc(d ocispec.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, ArtifactType: d.ArtifactType}
}

// fetchManifest reads a manifest and verifies it against desc.
func (c *copier) fetchManifest(ctx context.Context, desc ocispec.Descriptor) (*manifest.Manifest, error) {
	if c.root != nil && c.root.Digest == desc.Digest {
		return c.root, nil
	}
	mc, _ := ctx.Value(manifestCacheKey{}).(*manifestCache)
	if m := mc.get(desc.Digest); m != nil {
		return m, nil
	}
	m, err := fetchManifest(ctx, c.src, desc)
	if err == nil {
		mc.put(m)
	}
	return m, err
}

// manifestCache keeps the manifests one copy read, in its context: a
// conversion reads an index's entries to plan the result, then copies them.
type manifestCache struct {
	mu sync.Mutex
	m  map[digest.Digest]*manifest.Manifest
}

type manifestCacheKey struct{}

func withManifestCache(ctx context.Context) context.Context {
	if _, ok := ctx.Value(manifestCacheKey{}).(*manifestCache); ok {
		return ctx
	}
	return context.WithValue(ctx, manifestCacheKey{}, &manifestCache{m: map[digest.Digest]*manifest.Manifest{}})
}

func (mc *manifestCache) get(d digest.Digest) *manifest.Manifest {
	if mc == nil {
		return nil
	}
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return mc.m[d]
}

func (mc *manifestCache) put(m *manifest.Manifest) {
	if mc == nil {
		return
	}
	mc.mu.Lock()
	defer mc.mu.Unlock()
	mc.m[m.Digest] = m
}

func fetchManifest(ctx context.Context, src *endpoint, desc ocispec.Descriptor) (*manifest.Manifest, error) {
	raw, err := fetchRaw(ctx, src, desc)
	if err != nil {
		return nil, err
	}
	return parseManifest(src, desc, raw)
}

// fetchRaw reads the manifest desc describes and checks it against desc.
func fetchRaw(ctx context.Context, src *endpoint, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > content.MaxManifestSize {
		return nil, fmt.Errorf("manifest %s is %d bytes, over the %d byte limit: %w", desc.Digest, desc.Size, content.MaxManifestSize, core.ErrTooLarge)
	}
	raw, err := src.GetManifest(ctx, desc)
	if err != nil {
		return nil, src.wrap("get manifest "+desc.Digest.String(), err)
	}
	if err := content.VerifyBytes(raw, desc); err != nil {
		return nil, src.wrap("manifest "+desc.Digest.String(), err)
	}
	return raw, nil
}

// parseManifest parses raw, already checked against desc.
func parseManifest(src *endpoint, desc ocispec.Descriptor, raw []byte) (*manifest.Manifest, error) {
	m, err := manifest.Parse(raw, desc.MediaType)
	if err != nil {
		return nil, src.wrap("manifest "+desc.Digest.String(), err)
	}
	return m, nil
}

// resolveManifest resolves ref and reads its manifest: in one call where the
// endpoint answers both (one GET on a registry), else Resolve then
// GetManifest. For a caller that reads the manifest whatever it is; one
// that may stop at the digest (a copy the destination already holds)
// resolves alone, which a registry answers with a HEAD.
func resolveManifest(ctx context.Context, src *endpoint, ref string) (ocispec.Descriptor, *manifest.Manifest, error) {
	top, raw, err := resolveRaw(ctx, src, ref)
	if err != nil {
		return top, nil, err
	}
	m, err := parseManifest(src, top, raw)
	return top, m, err
}

// resolveRaw is resolveManifest without parsing: the descriptor and the
// bytes, checked against each other.
func resolveRaw(ctx context.Context, src *endpoint, ref string) (ocispec.Descriptor, []byte, error) {
	mr, ok := src.Endpoint.(pluginapi.ManifestResolver)
	if !ok || !src.has(pluginapi.CapSource) {
		top, err := src.Resolve(ctx, ref)
		if err != nil {
			return top, nil, src.wrap("resolve "+quote(ref), err)
		}
		raw, err := fetchRaw(ctx, src, top)
		return top, raw, err
	}
	top, raw, err := mr.ResolveManifest(ctx, ref)
	if err != nil {
		return top, nil, src.wrap("resolve "+quote(ref), err)
	}
	if err := content.VerifyBytes(raw, top); err != nil {
		return top, nil, src.wrap("manifest "+top.Digest.String(), err)
	}
	return top, raw, nil
}

// selectPlatforms picks the images of an index to copy. One match copies
// that image's manifest as the top level; several make a new index of the
// matching entries, every other field of the original kept as it was.
func (c *copier) selectPlatforms(ctx context.Context, idx *manifest.Manifest) (*manifest.Manifest, error) {
	want := distinctPlatforms(c.opts.Platforms)
	if len(want) == 0 {
		want = []ocispec.Platform{platform.Default()}
	}
	sel := platform.Select(idx.Manifests, want)
	// A copy names every platform asked for that the index lacks (a sync
	// takes the ones it has, unless it has none).
	var missing []string
	for _, w := range want {
		if len(sel) == 0 || (!c.subsetPlatforms && len(platform.Select(idx.Manifests, []ocispec.Platform{w})) == 0) {
			missing = append(missing, platform.Format(w))
		}
	}
	if len(missing) > 0 {
		var have []string
		for _, d := range idx.Manifests {
			if d.Platform != nil {
				have = append(have, platform.Format(*d.Platform))
			}
		}
		hint := "--platform naming one of those, or --all"
		if len(c.opts.Platforms) == 0 {
			hint = "--platform or --all"
		}
		has := "it has " + strings.Join(have, ", ")
		if len(have) == 0 {
			has = "its entries name no platform"
		}
		return nil, fmt.Errorf("index %s has no image for %s (%s); use %s: %w",
			idx.Digest, strings.Join(missing, ", "), has, hint, core.ErrNotFound)
	}
	if len(want) == 1 {
		// One platform asked: the first match, as skopeo picks it.
		return c.fetchManifest(ctx, idx.Manifests[sel[0]])
	}
	raw, err := filterIndex(idx.Raw, sel)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", idx.Digest, err)
	}
	return manifest.Parse(raw, idx.MediaType)
}

// checksImagePlatform says whether an image that is no index is checked
// against the platforms asked for (checkPlatform), for a copy of all
// platforms or not.
func (c *copier) checksImagePlatform(all bool) bool {
	return !all && len(c.opts.Platforms) > 0 && !c.opts.PlatformsPickOnly
}

// checkPlatform refuses an image (not an index) whose config names a
// platform other than those asked for: a copy wants it to be every one of
// them, a sync (subsetPlatforms) one of them. --platform used to be ignored
// on an image, copying linux/amd64 to someone who asked for linux/arm64.
// An image whose config names no platform (an artifact, a signature) has
// none to check and is copied as it is.
func (c *copier) checkPlatform(ctx context.Context, m *manifest.Manifest) error {
	if m.Config.MediaType != manifest.OCIConfig && m.Config.MediaType != manifest.DockerConfig {
		return nil
	}
	rc, err := c.src.GetBlob(ctx, m.Config, 0)
	if err != nil {
		return c.src.wrap("get config "+m.Config.Digest.String(), err)
	}
	raw, err := content.ReadAllVerified(rc, m.Config, content.MaxConfigSize)
	rc.Close()
	if err != nil {
		return c.src.wrap("config "+m.Config.Digest.String(), err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("config %s: not an image config: %v: %w", m.Config.Digest, err, core.ErrInvalid)
	}
	if cfg.OS == "" || cfg.Architecture == "" {
		return nil
	}
	have := platform.Format(platform.Normalize(cfg.Platform)) // as matched: a bare arm is arm/v7
	var missing []string
	matched := false
	for _, w := range distinctPlatforms(c.opts.Platforms) {
		if platform.Match(w, cfg.Platform) {
			matched = true
		} else {
			missing = append(missing, platform.Format(w))
		}
	}
	if len(missing) == 0 || (matched && c.subsetPlatforms) {
		return nil
	}
	return fmt.Errorf("image %s is for %s, not %s (an image of one platform, not an index to pick from); use --platform %s or none: %w",
		m.Digest, have, strings.Join(missing, ", "), have, core.ErrNotFound)
}

// putBlobStep names the step of a blob the destination refused, without
// the digest when the destination's error names it already ("put blob D:
// archive A: blob D: no space left on device").
func putBlobStep(desc ocispec.Descriptor, err error) string {
	if strings.Contains(err.Error(), "blob "+desc.Digest.String()) {
		return "put blob"
	}
	return "put blob " + desc.Digest.String()
}

// distinctPlatforms drops repeats: a platform named twice is one platform,
// copied as that image alone, not as an index of one entry.
func distinctPlatforms(ps []ocispec.Platform) []ocispec.Platform {
	seen := make(map[string]bool, len(ps))
	var out []ocispec.Platform
	for _, p := range ps {
		k := platform.Format(platform.Normalize(p))
		if !seen[k] {
			seen[k] = true
			out = append(out, p)
		}
	}
	return out
}

// filterIndex rewrites an index keeping only the entries at sel: the bytes
// of the kept entries, of every other top-level field and the layout
// between them are the original's (nothing is re-encoded: key order,
// spacing and escapes stay).
func filterIndex(raw []byte, sel []int) ([]byte, error) {
	mStart, mEnd, err := memberSpan(raw, "manifests")
	if err != nil {
		return nil, err
	}
	arr := raw[mStart:mEnd]
	spans, err := elementSpans(arr)
	if err != nil {
		return nil, fmt.Errorf("manifests: %w", err)
	}
	sep := []byte(",")
	if len(spans) > 1 {
		sep = arr[spans[0][1]:spans[1][0]]
	}
	var b bytes.Buffer
	b.Write(raw[:mStart])
	if len(spans) > 0 {
		b.Write(arr[:spans[0][0]])
	} else {
		b.WriteString("[")
	}
	for i, k := range sel {
		if k < 0 || k >= len(spans) {
			return nil, fmt.Errorf("no manifests entry %d", k)
		}
		if i > 0 {
			b.Write(sep)
		}
		b.Write(arr[spans[k][0]:spans[k][1]])
	}
	if len(spans) > 0 {
		b.Write(arr[spans[len(spans)-1][1]:])
	} else {
		b.WriteString("]")
	}
	b.Write(raw[mEnd:])
	return b.Bytes(), nil
}

// memberSpan finds the bytes of the value of key in the JSON object raw.
func memberSpan(raw []byte, key string) (start, end int, err error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return 0, 0, fmt.Errorf("not a JSON object")
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return 0, 0, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return 0, 0, err
		}
		if k == key {
			end := int(dec.InputOffset())
			return end - len(v), end, nil
		}
	}
	return 0, 0, fmt.Errorf("no %q", key)
}

// elementSpans finds the bytes of each element of the JSON array arr.
func elementSpans(arr []byte) ([][2]int, error) {
	dec := json.NewDecoder(bytes.NewReader(arr))
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return nil, fmt.Errorf("not a JSON array")
	}
	var spans [][2]int
	for dec.More() {
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		end := int(dec.InputOffset())
		spans = append(spans, [2]int{end - len(v), end})
	}
	return spans, nil
}

// copyTree copies everything m refers to, children before parents, but not
// m itself, and returns m as it is to be written: converted, for an index
// whose entries were (an image manifest is converted by its caller).
func (c *copier) copyTree(ctx context.Context, m *manifest.Manifest) (*manifest.Manifest, error) {
	if m.IsIndex() {
		// Child manifests in parallel, each with its blobs bounded by sem.
		entries := make([]ocispec.Descriptor, len(m.Manifests))
		g, gctx := errgroup.WithContext(ctx)
		for i, child := range m.Manifests {
			g.Go(func() (err error) {
				entries[i], err = c.copyChildOnce(gctx, child)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
		return c.convert(ctx, m, entries)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, b := range m.Children() {
		g.Go(func() error { return c.copyBlob(gctx, b) })
	}
	return m, g.Wait()
}

// copyChildOnce is copyChild once per copier for each manifest (and
// format): a sync's images that share child manifests write each once. A
// registry re-writing a manifest while another request checks it may
// answer that it does not know it (docker-registry does).
func (c *copier) copyChildOnce(ctx context.Context, desc ocispec.Descriptor) (ocispec.Descriptor, error) {
	out, err := c.children.do(ctx, childKey{desc.Digest, formatIn(ctx)}, func() (ocispec.Descriptor, error) {
		return c.copyChild(ctx, desc)
	})
	if err != nil || out.Digest == desc.Digest {
		return desc, err // the entry as this index has it
	}
	return out, nil
}

type childKey struct {
	digest digest.Digest
	format manifest.Format
}

// copyChild copies a manifest referenced by an index, then writes it by
// digest; it returns the descriptor written (another than desc when the
// manifest was converted).
func (c *copier) copyChild(ctx context.Context, desc ocispec.Descriptor) (ocispec.Descriptor, error) {
	if !manifest.IsManifest(desc.MediaType) {
		// An index may point at other content (artifacts): copy as a blob.
		return desc, c.copyBlob(ctx, desc)
	}
	convert := needsConversion(ctx, desc.MediaType)
	if !convert {
		if ok, err := c.dst.HasBlob(ctx, desc); err == nil && ok && manifest.IsImageManifest(desc.MediaType) {
			// The destination has the manifest; with children-first
			// writes it has everything below it too.
			c.skipped(desc)
			return desc, c.copySignatures(ctx, desc.Digest, desc.Digest)
		}
	}
	m, err := c.fetchManifest(ctx, desc)
	if err != nil {
		return desc, err
	}
	out := plainDesc(desc)
	if convert && !m.IsIndex() {
		conv, err := c.convert(ctx, m, nil)
		if err != nil {
			return desc, err
		}
		out = conv.Descriptor()
		if ok, err := c.dst.HasBlob(ctx, out); err == nil && ok {
			c.skipped(out)
			return out, c.copySignatures(ctx, desc.Digest, out.Digest)
		}
		if _, err := c.copyTree(ctx, m); err != nil {
			return desc, err
		}
		m = conv
	} else {
		written, err := c.copyTree(ctx, m)
		if err != nil {
			return desc, err
		}
		if written != m {
			m, out = written, written.Descriptor()
		}
	}
	if err := c.putManifest(ctx, out, m.Raw, ""); err != nil {
		return desc, err
	}
	if err := c.copySignatures(ctx, desc.Digest, out.Digest); err != nil {
		return desc, err
	}
	c.stats.manifests.Add(1)
	if out.Digest == desc.Digest {
		out = desc // the entry as the index has it
	}
	c.emit(Event{Kind: ManifestDone, Desc: out})
	return out, nil
}

// copyBlob copies one blob once per copier, whatever the number of
// manifests that share it.
func (c *copier) copyBlob(ctx context.Context, desc ocispec.Descriptor) error {
	_, err := c.done.do(ctx, desc.Digest, func() (struct{}, error) {
		sl := &slot{sem: c.sem}
		if err := sl.acquire(ctx); err != nil {
			return struct{}{}, err
		}
		defer sl.release()
		ctx := context.WithValue(ctx, slotKey{}, sl)
		if c.share != nil {
			return struct{}{}, c.share.transfer(ctx, c, desc)
		}
		return struct{}{}, c.transferBlob(ctx, desc)
	})
	return err
}

// slot is a blob transfer's hold on one of the copy's --jobs transfers. A
// transfer gives it up once its bytes have all arrived and only the
// destination's durable commit (fsync, rename) remains, so that the next
// blob downloads meanwhile; it takes one again to start over.
type slot struct {
	sem  chan struct{}
	held bool
}

type slotKey struct{}

func (s *slot) acquire(ctx context.Context) error {
	if s.held {
		return nil
	}
	select {
	case s.sem <- struct{}{}:
		s.held = true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *slot) release() {
	if s.held {
		<-s.sem
		s.held = false
	}
}

// releaseSlot gives up the transfer slot of ctx, if any: the bytes are in.
func releaseSlot(ctx context.Context) {
	if s, ok := ctx.Value(slotKey{}).(*slot); ok {
		s.release()
	}
}

// reacquireSlot takes the transfer slot of ctx again, if it was given up.
func reacquireSlot(ctx context.Context) error {
	if s, ok := ctx.Value(slotKey{}).(*slot); ok {
		return s.acquire(ctx)
	}
	return nil
}

// skipped counts and reports a blob the destination already had.
func (c *copier) skipped(desc ocispec.Descriptor) {
	c.stats.skipped.Add(1)
	c.emit(Event{Kind: BlobSkipped, Desc: desc})
}

func (c *copier) transferBlob(ctx context.Context, desc ocispec.Descriptor) error {
	if manifest.IsNonDistributable(desc.MediaType) {
		switch {
		case c.dst.ep.Transport == ref.Docker:
			// Foreign layers are not pushed to registries (skopeo and
			// crane agree); the manifest keeps pointing at their URLs.
			c.skipped(desc)
			return nil
		case len(desc.URLs) > 0 && c.dst.ep.Transport != ref.DockerArchive:
			// Elsewhere one is copied when the source has it (an
			// air-gapped copy needs it), and left to its URLs when not,
			// as a registry leaves it (skopeo leaves it always); a
			// docker-archive cannot point anywhere else.
			err := c.transferBlobBytes(ctx, desc)
			if errors.Is(err, core.ErrNotFound) {
				if c.logger != nil {
					c.logger.Debug("foreign layer left to its URLs: the source does not hold it", "digest", desc.Digest, "urls", desc.URLs)
				}
				c.skipped(desc)
				return nil
			}
			return err
		}
	}
	return c.transferBlobBytes(ctx, desc)
}

// transferBlobBytes stores desc's bytes at the destination: mounted, linked,
// staged or streamed.
func (c *copier) transferBlobBytes(ctx context.Context, desc ocispec.Descriptor) error {
	// Mounts are for another location of the same kind (the plugin refuses
	// one it cannot mount from); two registries never mount, so they are
	// not asked.
	mount := !c.opts.StreamOnly && c.dst.has(pluginapi.CapMount) && c.src.ep.Transport == c.dst.ep.Transport &&
		c.src.ep.Location != c.dst.ep.Location && registryOf(c.src.ep) == registryOf(c.dst.ep)
	// A remote destination (one that stages no local file) is asked to
	// mount first: a mount answers whether or not it already holds the
	// blob, so a copy within one registry makes one request per blob, not
	// a HEAD and then the mount. A local destination checks first, with a
	// stat, which keeps a blob it held reported as skipped. A refused mount
	// falls back to copying the bytes.
	local := c.dst.has(pluginapi.CapStageBlob)
	if mount && !local && c.mount(ctx, desc, c.src.ep.Location) {
		return nil
	}
	has, err := c.dst.HasBlob(ctx, desc)
	if err != nil {
		return c.dst.wrap("check blob "+desc.Digest.String(), err)
	}
	if has {
		c.skipped(desc)
		return nil
	}
	if mount && local && c.mount(ctx, desc, c.src.ep.Location) {
		return nil
	}
	for attempt := 1; ; attempt++ {
		if err := reacquireSlot(ctx); err != nil {
			return err
		}
		err := c.moveBlob(ctx, desc)
		if err == nil || attempt > blobRetries || !c.retryable(ctx, err) {
			return err
		}
		// A transfer broken half-way that the destination could not resume
		// (distribution drops an upload session whose PATCH broke): start
		// the blob again, from the source.
		c.logRetry(desc, attempt, err)
		t := time.NewTimer(time.Duration(attempt) * blobRetryDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// mount asks the destination to mount desc from location from and reports
// whether it did. A refusal, or a failed mount, means the bytes are to be
// copied.
func (c *copier) mount(ctx context.Context, desc ocispec.Descriptor, from string) bool {
	ok, err := c.dst.Endpoint.(pluginapi.Mounter).MountBlob(ctx, desc, from)
	if err != nil || !ok {
		return false
	}
	c.stats.mounted.Add(1)
	c.emit(Event{Kind: BlobMounted, Desc: desc})
	return true
}

// blobRetries is how many times a blob transfer that failed on an
// unavailable peer is started again; blobRetryDelay the first wait.
const (
	blobRetries    = 2
	blobRetryDelay = 250 * time.Millisecond
)

// retryable reports whether a failed transfer is worth starting again: the
// peer was unavailable (a broken connection, an upload that could not
// resume), nothing was wrong with the bytes, no plugin stalled past its
// timeout, and both plugins still run.
func (c *copier) retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || !errors.Is(err, core.ErrUnavailable) || errors.Is(err, core.ErrDigestMismatch) {
		return false
	}
	var te *TimeoutError
	if errors.As(err, &te) {
		return false // a plugin that stopped answering: not worth a second wait
	}
	for _, e := range []*endpoint{c.src, c.dst} {
		if e.run != nil && e.run.client.Exited() {
			return false
		}
	}
	return true
}

func (c *copier) logRetry(desc ocispec.Descriptor, attempt int, err error) {
	if c.logger != nil {
		c.logger.Warn("blob transfer failed, starting it again", "digest", desc.Digest.String(), "attempt", attempt, "error", err.Error())
	}
}

// moveBlob moves a blob's bytes: handing a local source file to the
// destination, or streaming it through the host.
func (c *copier) moveBlob(ctx context.Context, desc ocispec.Descriptor) error {
	if !c.opts.StreamOnly && c.src.has(pluginapi.CapBlobPath) && c.dst.has(pluginapi.CapPutBlobFile) {
		if done, err := c.linkBlob(ctx, desc); done || err != nil {
			return err
		}
	}
	if !c.opts.StreamOnly && c.src.has(pluginapi.CapGetBlobFile) && c.dst.has(pluginapi.CapStageBlob) {
		if done, err := c.fetchToStaged(ctx, desc); done || err != nil {
			return err
		}
	}
	if !c.opts.StreamOnly && c.dst.has(pluginapi.CapCopyBlob) && c.src.owner != nil && c.src.owner == c.dst.owner {
		if done, err := c.copyInPlugin(ctx, desc); done || err != nil {
			return err
		}
	}
	return c.streamBlob(ctx, desc)
}

// copyInPlugin has the destination copy a blob from the source, two
// endpoints of one plugin (the docker plugin between two registries): the
// bytes go from one to the other inside the plugin, not through the host,
// and the destination registry checks the digest before the blob is
// visible. It reports false when the plugin cannot copy from this source
// (the caller streams the blob instead).
func (c *copier) copyInPlugin(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	c.emit(Event{Kind: BlobStart, Desc: desc})
	err := c.dst.Endpoint.(pluginapi.BlobCopier).CopyBlobFrom(ctx, desc, c.src.Endpoint, c.progress(desc))
	switch {
	case err == nil:
	case errors.Is(err, core.ErrUnsupported) && ctx.Err() == nil:
		return false, nil
	case wrongContent(err):
		// The source sent wrong bytes: say so.
		return true, c.src.wrap("blob "+desc.Digest.String(), err)
	default:
		return true, c.dst.wrap("copy blob "+desc.Digest.String()+" from "+c.src.ep.String(), err)
	}
	c.moved(desc, BlobDone)
	return true, nil
}

// fetchToStaged has the source write a blob straight into a file the
// destination staged (a registry downloading into an OCI layout): the bytes
// skip the host, and the destination checks size and digest as it commits
// the file, before anything becomes visible. It reports false, the staged
// file aborted, when the source cannot write that file (the caller streams
// the blob instead).
func (c *copier) fetchToStaged(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	st := c.dst.Endpoint.(pluginapi.BlobStager)
	path, abort, err := c.stage(ctx, st, desc)
	if path == "" {
		return err != nil, err
	}
	c.emit(Event{Kind: BlobStart, Desc: desc})
	err = c.src.Endpoint.(pluginapi.BlobFileGetter).GetBlobToFile(ctx, desc, path, c.progress(desc))
	if err != nil {
		abort()
		if errors.Is(err, core.ErrUnsupported) && ctx.Err() == nil {
			return false, nil
		}
		return true, c.src.wrap("get blob "+desc.Digest.String()+" into "+path, err)
	}
	// The bytes are in; hashing, fsync and rename remain, in the
	// destination: let the next blob start meanwhile.
	releaseSlot(ctx)
	if err := st.CommitStagedBlob(ctx, desc, path); err != nil {
		abort()
		if wrongContent(err) {
			// The source sent wrong bytes: say so.
			return true, c.src.wrap("blob "+desc.Digest.String(), err)
		}
		return true, c.dst.wrap("commit staged blob "+desc.Digest.String(), err)
	}
	c.moved(desc, BlobDone)
	return true, nil
}

// linkBlob hands a local source file to a destination that can take it
// without the host streaming it (a hard link, copy_file_range, or a
// registry upload straight from the file). The destination verifies the content before it becomes
// visible (FilePutter's contract). It reports false when the source has no
// local path for the blob.
func (c *copier) linkBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	path, err := c.src.Endpoint.(pluginapi.BlobPather).BlobPath(ctx, desc)
	if err != nil || path == "" {
		return false, nil
	}
	// The destination may take a while (an upload): show the blob as in
	// flight, with the bytes sent when the destination reports them.
	c.emit(Event{Kind: BlobStart, Desc: desc})
	// The call reporting progress, whether or not anyone shows it: the
	// reports are what the inactivity timeout watches.
	if c.dst.has(pluginapi.CapPutBlobFileProgress) {
		err = c.dst.Endpoint.(pluginapi.FileProgressPutter).PutBlobFileProgress(ctx, desc, path, c.progress(desc))
	} else {
		err = c.dst.Endpoint.(pluginapi.FilePutter).PutBlobFile(ctx, desc, path)
	}
	if err != nil {
		step := "put blob " + desc.Digest.String() + " from " + path
		if strings.Contains(err.Error(), desc.Digest.String()+" from "+path) {
			// The destination named the blob and the file (an OCI layout
			// does): "put blob D from P: oci layout L: blob D from P: ...".
			step = "put blob"
		}
		return true, c.dst.wrap(step, err)
	}
	c.moved(desc, BlobLinked)
	return true, nil
}

// streamBlob moves a blob's bytes from source to destination through the
// host, verifying size and digest as they pass. The verifying reader
// withholds the last byte of wrong content, so the destination never
// receives a whole wrong blob even if it did not check. Local files are
// read and written by the host itself where the endpoints allow it
// (blob-path, stage-blob), so the bytes skip the plugin processes.
func (c *copier) streamBlob(ctx context.Context, desc ocispec.Descriptor) error {
	rc, err := c.openSourceBlob(ctx, desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	c.emit(Event{Kind: BlobStart, Desc: desc})
	vr := content.NewVerifyReader(rc, desc)
	var r io.Reader = vr
	if c.opts.Progress != nil {
		r = pluginapi.ProgressReader(vr, 1<<20, c.progress(desc))
	}
	if st, ok := c.dst.Endpoint.(pluginapi.BlobStager); ok && c.dst.has(pluginapi.CapStageBlob) {
		staged, err := c.stageBlob(ctx, st, desc, vr, r)
		if err != nil {
			return err
		}
		if staged {
			c.moved(desc, BlobDone)
			return nil
		}
		// The staged file is not usable from here: stream to the plugin.
	}
	if err := c.dst.PutBlob(pluginapi.WithHostVerified(ctx), desc, r); err != nil {
		if verr := verifyErr(vr); verr != nil {
			// The source sent wrong bytes: say so, not what the
			// destination made of the cut stream.
			return c.src.wrap("blob "+desc.Digest.String(), verr)
		}
		return c.dst.wrap(putBlobStep(desc, err), err)
	}
	// A destination may stop reading early when it already holds the
	// blob (a concurrent copy stored it); its contract is to keep only
	// verified content, so the rest of the source is not read.
	c.moved(desc, BlobDone)
	return nil
}

// openSourceBlob opens a blob of the source for streaming: the local file
// itself when the source has one (blob-path), so the bytes do not pass
// through the source plugin, else GetBlob. The caller verifies either way.
func (c *copier) openSourceBlob(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if bp, ok := c.src.Endpoint.(pluginapi.BlobPather); ok && c.src.has(pluginapi.CapBlobPath) {
		if path, err := bp.BlobPath(ctx, desc); err == nil && path != "" {
			if f, err := atomicfile.OpenRegular(path, os.O_RDONLY); err == nil {
				return f, nil
			}
		}
		// No usable local file: ask the plugin for the bytes.
	}
	rc, err := c.src.GetBlob(ctx, desc, 0)
	if err != nil {
		return nil, c.src.wrap("get blob "+desc.Digest.String(), err)
	}
	return rc, nil
}

// stageBlob writes a blob into a file the destination staged (stage-blob)
// from r, which reads vr, then has the destination commit it: the host
// hashed every byte it wrote, so the commit is host-verified. Any failure
// aborts the staged file. It reports false, having read nothing, when the
// staged file cannot be used from this process (the plugin sees another
// filesystem), so that the caller streams to the plugin instead.
func (c *copier) stageBlob(ctx context.Context, st pluginapi.BlobStager, desc ocispec.Descriptor, vr *content.VerifyReader, r io.Reader) (bool, error) {
	path, abort, err := c.stage(ctx, st, desc)
	if path == "" {
		return err != nil, err
	}
	var f *os.File
	if filepath.IsAbs(path) {
		f, err = atomicfile.OpenRegular(path, os.O_WRONLY)
	} else {
		err = fmt.Errorf("staged path %q is not absolute: %w", path, core.ErrInvalid)
	}
	if err == nil {
		if fi, serr := f.Stat(); serr != nil || fi.Size() != 0 {
			// Not the fresh file the destination staged.
			f.Close()
			err = fmt.Errorf("staged file %s is not empty: %w", path, core.ErrInvalid)
		}
	}
	if err != nil {
		abort()
		return false, nil
	}
	w := &stagedWriter{f: atomicfile.NewWriteback(f)}
	bufp := stageBufs.Get().(*[]byte)
	_, err = io.CopyBuffer(w, atomicfile.ContextReader(ctx, r), *bufp)
	stageBufs.Put(bufp)
	if err == nil && !vr.Verified() {
		err = fmt.Errorf("blob %s: stream ended unverified: %w", desc.Digest, core.ErrInvalid)
	}
	if err == nil {
		// Every byte is in and verified; what remains is the disk's: let
		// the next blob start downloading while this one is made durable.
		releaseSlot(ctx)
	}
	w.f.Wait()
	if err == nil {
		if err = f.Sync(); err != nil {
			w.err = err
		}
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err, w.err = cerr, cerr
	}
	if err != nil {
		abort()
		switch verr := verifyErr(vr); {
		case verr != nil:
			// The source sent wrong bytes: say so.
			return true, c.src.wrap("blob "+desc.Digest.String(), verr)
		case ctx.Err() != nil:
			return true, ctx.Err()
		case w.err != nil:
			return true, c.dst.wrap("write staged blob "+desc.Digest.String()+" to "+path, w.err)
		}
		return true, c.src.wrap("get blob "+desc.Digest.String(), err)
	}
	if err := st.CommitStagedBlob(pluginapi.WithHostVerified(ctx), desc, path); err != nil {
		return true, c.dst.wrap("commit staged blob "+desc.Digest.String(), err)
	}
	return true, nil
}

// stage asks the destination for a file staged for desc. No path and no
// error: the destination cannot stage here (the caller takes another way).
// abort removes the file, even once ctx is cancelled (the plugin's Close
// would otherwise).
func (c *copier) stage(ctx context.Context, st pluginapi.BlobStager, desc ocispec.Descriptor) (path string, abort func(), err error) {
	path, err = st.StageBlob(ctx, desc)
	if err != nil {
		if errors.Is(err, core.ErrUnsupported) {
			return "", nil, nil
		}
		return "", nil, c.dst.wrap("stage blob "+desc.Digest.String(), err)
	}
	return path, func() { _ = st.AbortStagedBlob(context.WithoutCancel(ctx), path) }, nil
}

// stageBufs are the 1 MiB buffers of staged writes.
var stageBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// stagedWriter writes to a staged file and keeps its write error apart from
// the source's read errors. It has no ReadFrom, so io.CopyBuffer uses the
// 1 MiB buffer.
type stagedWriter struct {
	f   *atomicfile.Writeback
	err error
}

func (w *stagedWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		w.err = err
	}
	return n, err
}

// verifyErr returns the integrity failure a VerifyReader hit, if any.
func verifyErr(vr *content.VerifyReader) error {
	if err := vr.Err(); wrongContent(err) {
		return err
	}
	return nil
}

// wrongContent reports whether err says a blob's bytes were not the ones
// its descriptor names (digest or size).
func wrongContent(err error) bool {
	return errors.Is(err, core.ErrDigestMismatch) || errors.Is(err, core.ErrSizeMismatch)
}

// progress returns the callback that reports desc's bytes moved so far.
func (c *copier) progress(desc ocispec.Descriptor) func(int64) {
	return func(n int64) { c.emit(Event{Kind: BlobProgress, Desc: desc, Bytes: n}) }
}

// moved counts desc as copied and reports it done (kind BlobDone, or
// BlobLinked when the destination took it from a local file).
func (c *copier) moved(desc ocispec.Descriptor, kind EventKind) {
	c.stats.copied.Add(1)
	c.bytes.Add(desc.Size)
	c.emit(Event{Kind: kind, Desc: desc, Bytes: desc.Size})
}
