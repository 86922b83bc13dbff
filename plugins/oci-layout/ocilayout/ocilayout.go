package ocilayout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// TransportName is the endpoint prefix this plugin serves (oci:DIR).
const TransportName = "oci"

// Plugin serves the oci transport.
type Plugin struct {
	mu sync.Mutex
	// stores are the layouts endpoints hold open, one Store per
	// directory: what one endpoint writes, another reading the same
	// layout sees without parsing index.json again (a sync resolves each
	// tag at its target while writing there), and concurrent tags of all
	// of them are written together.
	stores map[string]*openStore
}

type openStore struct {
	s     *layout.Store
	users int
}

// New returns the oci transport plugin.
func New() *Plugin { return &Plugin{} }

// store opens the layout at loc with open, or shares the Store an open
// endpoint holds; release gives it back.
func (p *Plugin) store(loc string, open func(string) (*layout.Store, error)) (s *layout.Store, release func(), err error) {
	key, err := filepath.Abs(loc)
	if err != nil {
		key = filepath.Clean(loc)
	}
	p.mu.Lock()
	o := p.stores[key]
	if o == nil {
		// Opened without p.mu: creating a layout waits for its lock,
		// which another process may hold, and must not hold up the
		// endpoints of other layouts meanwhile.
		p.mu.Unlock()
		s, err = open(loc)
		if err != nil {
			return nil, nil, err
		}
		p.mu.Lock()
		if o = p.stores[key]; o == nil { // else another Open won: share its Store
			o = &openStore{s: s}
			if p.stores == nil {
				p.stores = map[string]*openStore{}
			}
			p.stores[key] = o
		}
	}
	o.users++
	p.mu.Unlock()
	var once sync.Once
	return o.s, func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if o.users--; o.users == 0 && p.stores[key] == o {
				delete(p.stores, key)
			}
		})
	}, nil
}

// Transports implements pluginapi.Plugin.
func (*Plugin) Transports() []string { return []string{TransportName} }

// Open implements pluginapi.Plugin.
func (p *Plugin) Open(ctx context.Context, req pluginapi.OpenRequest) (pluginapi.Endpoint, error) {
	if req.Transport != TransportName {
		return nil, fmt.Errorf("oci transport: cannot open transport %q: %w", req.Transport, core.ErrUnsupported)
	}
	if req.Location == "" {
		return nil, fmt.Errorf("oci transport: empty layout directory: %w", core.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch req.Mode {
	case pluginapi.ModeRead:
		s, release, err := p.store(req.Location, layout.Open)
		if err != nil {
			if errors.Is(err, layout.ErrNotLayout) {
				// A directory holding no layout, maybe layouts below it.
				return &treeEndpoint{dir: req.Location, err: err}, nil
			}
			return nil, err
		}
		return &readEndpoint{store: s, loc: req.Location, release: release}, nil
	case pluginapi.ModeWrite:
		// The Writer creates the layout if missing, and knows it did: a
		// layout this endpoint created and left holding nothing is
		// removed when it closes.
		created, w, err := layout.NewWriter(ctx, req.Location)
		if err != nil {
			return nil, err
		}
		s, release, err := p.store(req.Location, func(string) (*layout.Store, error) { return created, nil })
		if err != nil {
			w.Release()
			return nil, err
		}
		return &writeEndpoint{readEndpoint: readEndpoint{store: s, loc: req.Location, release: release}, writer: w}, nil
	}
	return nil, fmt.Errorf("oci layout %s: unknown mode %d: %w", req.Location, req.Mode, core.ErrInvalid)
}

// readEndpoint is a layout opened as a source.
type readEndpoint struct {
	store   *layout.Store
	loc     string // as opened
	release func() // gives the Store back to the plugin
}

var (
	_ pluginapi.Source           = (*readEndpoint)(nil)
	_ pluginapi.TagLister        = (*readEndpoint)(nil)
	_ pluginapi.RepositoryLister = (*readEndpoint)(nil)
	_ pluginapi.ReferrerLister   = (*readEndpoint)(nil)
	_ pluginapi.BlobPather       = (*readEndpoint)(nil)
)

// Close implements pluginapi.Endpoint. No file is held open between calls.
func (e *readEndpoint) Close(context.Context) error {
	e.release()
	return nil
}

// Resolve implements pluginapi.Source. The ref.name annotation is dropped
// from the returned descriptor; other annotations and the platform of the
// index.json entry are kept.
func (e *readEndpoint) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	d, err := e.store.Resolve(ctx, ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if _, ok := d.Annotations[ocispec.AnnotationRefName]; ok {
		ann := make(map[string]string, len(d.Annotations))
		for k, v := range d.Annotations {
			if k != ocispec.AnnotationRefName {
				ann[k] = v
			}
		}
		if len(ann) == 0 {
			ann = nil
		}
		d.Annotations = ann
	}
	return d, nil
}

// GetManifest implements pluginapi.Source; the bytes are verified.
func (e *readEndpoint) GetManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	return e.store.ReadBlob(ctx, desc, content.MaxManifestSize)
}

// GetBlob implements pluginapi.Source.
func (e *readEndpoint) GetBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	f, err := e.store.OpenBlob(ctx, desc.Digest)
	if err != nil {
		return nil, err
	}
	if offset != 0 {
		fi, err := f.Stat()
		if err == nil && (offset < 0 || offset > fi.Size()) {
			err = fmt.Errorf("offset %d outside the blob's %d bytes: %w", offset, fi.Size(), core.ErrInvalid)
		}
		if err == nil {
			_, err = f.Seek(offset, io.SeekStart)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("oci layout %s: blob %s: %w", e.store.Dir(), desc.Digest, err)
		}
	}
	return f, nil
}

// ListTags implements pluginapi.TagLister.
func (e *readEndpoint) ListTags(ctx context.Context) ([]string, error) {
	return e.store.Tags(ctx)
}

// ListRepositories implements pluginapi.RepositoryLister: this layout and
// the layouts in directories below it (layout.Find), as a mirror of many
// repositories into layouts writes them.
func (e *readEndpoint) ListRepositories(ctx context.Context) ([]string, error) {
	return layout.Find(ctx, e.loc)
}

// treeEndpoint is a directory that is not a layout, opened for reading: it
// lists the layouts below it, and every other call fails as opening it as
// a layout did ("not an OCI layout"), so that a copy from it says so.
type treeEndpoint struct {
	dir string
	err error
}

var (
	_ pluginapi.Source           = (*treeEndpoint)(nil)
	_ pluginapi.TagLister        = (*treeEndpoint)(nil)
	_ pluginapi.RepositoryLister = (*treeEndpoint)(nil)
)

func (*treeEndpoint) Close(context.Context) error { return nil }
func (e *treeEndpoint) Resolve(context.Context, string) (ocispec.Descriptor, error) {
	return ocispec.Descriptor{}, e.err
}
func (e *treeEndpoint) GetManifest(context.Context, ocispec.Descriptor) ([]byte, error) {
	return nil, e.err
}
func (e *treeEndpoint) GetBlob(context.Context, ocispec.Descriptor, int64) (io.ReadCloser, error) {
	return nil, e.err
}
func (e *treeEndpoint) ListTags(context.Context) ([]string, error) { return nil, e.err }
func (e *treeEndpoint) ListRepositories(ctx context.Context) ([]string, error) {
	return layout.Find(ctx, e.dir)
}

// BlobPath implements pluginapi.BlobPather.
func (e *readEndpoint) BlobPath(ctx context.Context, desc ocispec.Descriptor) (string, error) {
	if _, err := e.store.Stat(ctx, desc.Digest); err != nil {
		return "", err
	}
	return e.store.BlobPath(desc.Digest)
}

// Referrers implements pluginapi.ReferrerLister: the manifests listed in
// index.json whose subject is the given digest (layout.Store.Referrers).
func (e *readEndpoint) Referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	return e.store.Referrers(ctx, subject, artifactType)
}

// writeEndpoint is a layout opened as a destination; it can still read.
type writeEndpoint struct {
	readEndpoint

	mu     sync.Mutex
	staged map[string]ocispec.Descriptor // StageBlob paths not yet committed or aborted
	closed bool
	writer *layout.Writer
}

var (
	_ pluginapi.Destination = (*writeEndpoint)(nil)
	_ pluginapi.Deleter     = (*writeEndpoint)(nil)
	_ pluginapi.Mounter     = (*writeEndpoint)(nil)
	_ pluginapi.FilePutter  = (*writeEndpoint)(nil)
	_ pluginapi.BlobStager  = (*writeEndpoint)(nil)
)

// Close implements pluginapi.Endpoint: staged files that were not committed
// are removed, and so is a layout this endpoint created that holds nothing
// (no index.json entry, no blob, no other writer): a copy that failed before
// it wrote a blob leaves no empty layout behind; one that wrote blobs keeps
// them, with their layout (layout.Writer.Discard).
func (e *writeEndpoint) Close(context.Context) error {
	e.mu.Lock()
	staged := e.staged
	closed := e.closed
	e.staged, e.closed = nil, true
	e.mu.Unlock()
	if closed {
		return nil
	}
	var errs []error
	for p := range staged {
		errs = append(errs, e.store.AbortStaged(p))
	}
	e.release()
	if _, err := e.writer.Discard(e.store); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// StageBlob implements pluginapi.BlobStager: an empty file in the layout's
// temporary directory, remembered until it is committed, aborted or the
// endpoint is closed.
func (e *writeEndpoint) StageBlob(ctx context.Context, desc ocispec.Descriptor) (string, error) {
	p, err := e.store.StageBlob(ctx, desc)
	if err != nil {
		return "", err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		_ = e.store.AbortStaged(p)
		return "", fmt.Errorf("oci layout %s: endpoint is closed: %w", e.store.Dir(), core.ErrInvalid)
	}
	if e.staged == nil {
		e.staged = map[string]ocispec.Descriptor{}
	}
	e.staged[p] = desc
	return p, nil
}

// take forgets a path this endpoint staged, so that it is committed or
// aborted once; it refuses any other path.
func (e *writeEndpoint) take(path string) (ocispec.Descriptor, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	desc, ok := e.staged[path]
	if !ok {
		return desc, fmt.Errorf("oci layout %s: %q was not staged by this endpoint, or is already committed or aborted: %w", e.store.Dir(), path, core.ErrInvalid)
	}
	delete(e.staged, path)
	return desc, nil
}

// CommitStagedBlob implements pluginapi.BlobStager. The digest is checked
// unless the host hashed the bytes as it wrote them.
func (e *writeEndpoint) CommitStagedBlob(ctx context.Context, desc ocispec.Descriptor, path string) error {
	staged, err := e.take(path)
	if err != nil {
		return err
	}
	if staged.Digest != desc.Digest || staged.Size != desc.Size {
		_ = e.store.AbortStaged(path)
		return fmt.Errorf("oci layout %s: %q was staged for blob %s (%d bytes), not %s (%d bytes): %w",
			e.store.Dir(), path, staged.Digest, staged.Size, desc.Digest, desc.Size, core.ErrInvalid)
	}
	return e.store.CommitStaged(ctx, desc, path, pluginapi.HostVerified(ctx))
}

// AbortStagedBlob implements pluginapi.BlobStager.
func (e *writeEndpoint) AbortStagedBlob(_ context.Context, path string) error {
	if _, err := e.take(path); err != nil {
		return err
	}
	return e.store.AbortStaged(path)
}

// HasBlob implements pluginapi.Destination.
func (e *writeEndpoint) HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	ok, err := e.store.HasBlob(ctx, desc)
	if ok {
		// The copy will not write it: keep a garbage collector sharing
		// the layout from sweeping it meanwhile.
		e.store.Touch(desc.Digest)
	}
	return ok, err
}

// PutBlob implements pluginapi.Destination.
func (e *writeEndpoint) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	if pluginapi.HostVerified(ctx) {
		return e.store.WriteBlobSized(ctx, desc, r)
	}
	return e.store.WriteBlob(ctx, desc, r)
}

// PutManifest implements pluginapi.Destination.
func (e *writeEndpoint) PutManifest(ctx context.Context, desc ocispec.Descriptor, raw []byte, ref string) error {
	if err := content.VerifyBytes(raw, desc); err != nil {
		return fmt.Errorf("oci layout %s: manifest %s: %w", e.store.Dir(), desc.Digest, err)
	}
	if err := e.store.WriteBlobBytes(ctx, desc, raw); err != nil {
		return err
	}
	if ref == "" {
		var h struct {
			Subject *ocispec.Descriptor `json:"subject"`
		}
		if json.Unmarshal(raw, &h) != nil || h.Subject == nil {
			return nil // a child of an index: stored by digest only
		}
		// A referrer is only discoverable from index.json: record it
		// untagged (Tag with ref "").
	}
	return e.store.Tag(ctx, desc, ref)
}

// Delete implements pluginapi.Deleter: a tag or every entry of a digest is
// removed from index.json; blobs stay.
func (e *writeEndpoint) Delete(ctx context.Context, ref string) error {
	return e.store.Delete(ctx, ref)
}

// PutBlobFile implements pluginapi.FilePutter.
func (e *writeEndpoint) PutBlobFile(ctx context.Context, desc ocispec.Descriptor, path string) error {
	return e.store.WriteBlobFile(ctx, desc, path)
}

// MountBlob implements pluginapi.Mounter. fromLocation is another layout
// directory; the blob is hard-linked (or copied in the kernel across
// filesystems) and verified. It returns false, nil when fromLocation is not
// a layout or lacks the blob, so the host copies instead.
func (e *writeEndpoint) MountBlob(ctx context.Context, desc ocispec.Descriptor, fromLocation string) (bool, error) {
	if filepath.Clean(fromLocation) == filepath.Clean(e.store.Dir()) {
		return e.store.HasBlob(ctx, desc)
	}
	from, err := layout.Open(fromLocation)
	if err != nil {
		return false, nil
	}
	if size, err := from.Stat(ctx, desc.Digest); err != nil || size != desc.Size {
		return false, nil
	}
	src, err := from.BlobPath(desc.Digest)
	if err != nil {
		return false, nil
	}
	if err := e.store.WriteBlobFile(ctx, desc, src); err != nil {
		if errors.Is(err, core.ErrNotFound) {
			return false, nil // removed from the source meanwhile
		}
		return false, err
	}
	return true, nil
}
