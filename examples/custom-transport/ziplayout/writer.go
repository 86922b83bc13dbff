package ziplayout

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// entryTime is the modification time of every entry written, so that the
// same content always makes the same archive bytes.
var entryTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// writer is a write-mode endpoint: a Destination that also deletes, and a
// Committer. Nothing reaches PATH before Commit.
type writer struct {
	path    string
	old     *archive // what PATH held when opened; nil for a new archive
	staging string   // verified blobs wait here, named ALG-HEX

	mu        sync.Mutex
	index     ocispec.Index
	staged    map[digest.Digest]bool
	committed bool
	closed    bool
}

var (
	_ pluginapi.Destination = (*writer)(nil)
	_ pluginapi.Deleter     = (*writer)(nil)
	_ pluginapi.Committer   = (*writer)(nil)
)

func openWriter(path string) (*writer, error) {
	path = filepath.Clean(path)
	w := &writer{path: path, staged: map[digest.Digest]bool{}}
	w.index.SchemaVersion = 2
	w.index.MediaType = ocispec.MediaTypeImageIndex
	if _, err := os.Stat(path); err == nil {
		a, err := openArchive(path)
		if err != nil {
			return nil, err
		}
		w.old = a
		w.index.Manifests = slices.Clone(a.index.Manifests)
		w.index.Annotations = a.index.Annotations
	} else if !os.IsNotExist(err) {
		return nil, pathErr(path, err)
	}
	dir, base := filepath.Split(path)
	if err := os.MkdirAll(filepath.Clean(dir), 0o755); err != nil {
		w.closeOld()
		return nil, pathErr(path, err)
	}
	staging, err := os.MkdirTemp(filepath.Clean(dir), "."+base+".staging-")
	if err != nil {
		w.closeOld()
		return nil, pathErr(path, err)
	}
	w.staging = staging
	return w, nil
}

func (w *writer) closeOld() {
	if w.old != nil {
		w.old.close()
	}
}

func (w *writer) stagedPath(d digest.Digest) string {
	return filepath.Join(w.staging, d.Algorithm().String()+"-"+d.Encoded())
}

// HasBlob implements pluginapi.Destination.
func (w *writer) HasBlob(_ context.Context, desc ocispec.Descriptor) (bool, error) {
	if err := checkDigest(desc.Digest); err != nil {
		return false, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.staged[desc.Digest] || (w.old != nil && w.old.hasBlob(desc.Digest)), nil
}

// PutBlob implements pluginapi.Destination: the bytes are streamed into a
// staging file while their size and digest are checked, and the file is
// kept only if both match.
func (w *writer) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	if has, err := w.HasBlob(ctx, desc); err != nil || has {
		return err // already held: no need to read r
	}
	return w.stage(desc, ctxReader{ctx, r})
}

// stage writes a verified blob into the staging directory.
func (w *writer) stage(desc ocispec.Descriptor, r io.Reader) error {
	f, err := os.CreateTemp(w.staging, "ingest-")
	if err != nil {
		return fmt.Errorf("zip %s: blob %s: %w", w.path, desc.Digest, err)
	}
	tmp := f.Name()
	_, err = io.Copy(f, content.NewVerifyReader(r, desc))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, w.stagedPath(desc.Digest))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("zip %s: blob %s: %w", w.path, desc.Digest, err)
	}
	w.mu.Lock()
	w.staged[desc.Digest] = true
	w.mu.Unlock()
	return nil
}

// PutManifest implements pluginapi.Destination: the manifest is stored as a
// blob; a tag replaces the index.json entry of that name, the manifest's own
// digest as ref adds an untagged entry, and "" records nothing more.
func (w *writer) PutManifest(ctx context.Context, desc ocispec.Descriptor, raw []byte, ref string) error {
	if len(raw) > content.MaxManifestSize {
		return fmt.Errorf("zip %s: manifest %s is %d bytes, over the %d byte limit: %w", w.path, desc.Digest, len(raw), content.MaxManifestSize, core.ErrTooLarge)
	}
	if err := content.VerifyBytes(raw, desc); err != nil {
		return fmt.Errorf("zip %s: manifest: %w", w.path, err)
	}
	if desc.MediaType == "" {
		mt, err := manifest.DetectMediaType(raw)
		if err != nil {
			return fmt.Errorf("zip %s: manifest %s: %w", w.path, desc.Digest, err)
		}
		desc.MediaType = mt
	}
	if has, _ := w.HasBlob(ctx, desc); !has {
		if err := w.stage(desc, bytes.NewReader(raw)); err != nil {
			return err
		}
	}
	if ref == "" {
		return nil
	}
	entry := topDesc(desc)
	w.mu.Lock()
	defer w.mu.Unlock()
	if ref == desc.Digest.String() {
		for _, e := range w.index.Manifests {
			if e.Digest == desc.Digest && e.Annotations[ocispec.AnnotationRefName] == "" {
				return nil
			}
		}
	} else {
		entry.Annotations = map[string]string{ocispec.AnnotationRefName: ref}
		w.index.Manifests = slices.DeleteFunc(w.index.Manifests, func(e ocispec.Descriptor) bool {
			return e.Annotations[ocispec.AnnotationRefName] == ref
		})
	}
	w.index.Manifests = append(w.index.Manifests, entry)
	return nil
}

// Delete implements pluginapi.Deleter: a tag removes that index.json entry,
// a digest every entry of that manifest. Blobs stay in the archive.
func (w *writer) Delete(_ context.Context, ref string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	match := func(e ocispec.Descriptor) bool { return e.Annotations[ocispec.AnnotationRefName] == ref }
	if d, err := digest.Parse(ref); err == nil {
		match = func(e ocispec.Descriptor) bool { return e.Digest == d }
	}
	n := len(w.index.Manifests)
	w.index.Manifests = slices.DeleteFunc(w.index.Manifests, match)
	if len(w.index.Manifests) == n {
		return fmt.Errorf("zip %s: %q: %w", w.path, ref, core.ErrNotFound)
	}
	return nil
}

// Commit implements pluginapi.Committer: it writes the new archive next to
// PATH and renames it over PATH.
func (w *writer) Commit(ctx context.Context) (err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("zip %s: commit after close: %w", w.path, core.ErrInvalid)
	}
	f, err := os.CreateTemp(filepath.Dir(w.path), "."+filepath.Base(w.path)+".tmp-")
	if err != nil {
		return pathErr(w.path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := w.writeArchive(ctx, f); err != nil {
		return fmt.Errorf("zip %s: %w", w.path, err)
	}
	if err := f.Sync(); err != nil {
		return pathErr(w.path, err)
	}
	if err := f.Close(); err != nil {
		return pathErr(w.path, err)
	}
	if err := os.Rename(f.Name(), w.path); err != nil {
		return pathErr(w.path, err)
	}
	if d, err := os.Open(filepath.Dir(w.path)); err == nil {
		d.Sync() // make the rename durable; best effort
		d.Close()
	}
	w.committed = true
	return nil
}

// writeArchive writes the layout: oci-layout, the old archive's entries
// (raw, not recompressed), the staged blobs, index.json.
func (w *writer) writeArchive(ctx context.Context, out io.Writer) error {
	zw := zip.NewWriter(out)
	layout, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err := writeEntry(zw, ocispec.ImageLayoutFile, bytes.NewReader(layout)); err != nil {
		return err
	}
	if w.old != nil {
		for _, zf := range w.old.zr.File {
			if err := ctx.Err(); err != nil {
				return err
			}
			switch zf.Name {
			case ocispec.ImageLayoutFile, ocispec.ImageIndexFile:
				continue
			}
			if d, ok := blobDigest(zf.Name); ok && w.staged[d] {
				continue // written again below
			}
			if err := zw.Copy(zf); err != nil {
				return fmt.Errorf("copy %s: %w", zf.Name, err)
			}
		}
	}
	staged := make([]digest.Digest, 0, len(w.staged))
	for d := range w.staged {
		staged = append(staged, d)
	}
	slices.Sort(staged)
	for _, d := range staged {
		if err := ctx.Err(); err != nil {
			return err
		}
		sf, err := os.Open(w.stagedPath(d))
		if err != nil {
			return err
		}
		err = writeEntry(zw, blobName(d), sf)
		sf.Close()
		if err != nil {
			return err
		}
	}
	idx := w.index
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{}
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := writeEntry(zw, ocispec.ImageIndexFile, bytes.NewReader(raw)); err != nil {
		return err
	}
	return zw.Close()
}

// writeEntry stores r uncompressed under name.
func writeEntry(zw *zip.Writer, name string, r io.Reader) error {
	h := &zip.FileHeader{Name: name, Method: zip.Store, Modified: entryTime}
	h.SetMode(0o644)
	ew, err := zw.CreateHeader(h)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if _, err := io.Copy(ew, r); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// blobDigest parses a blob entry name back into its digest.
func blobDigest(name string) (digest.Digest, bool) {
	rest, ok := strings.CutPrefix(name, ocispec.ImageBlobsDir+"/")
	if !ok {
		return "", false
	}
	alg, enc, ok := strings.Cut(rest, "/")
	if !ok {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
	return d, d.Validate() == nil
}

// Close implements pluginapi.Endpoint. Without a Commit before it, nothing
// written reaches PATH.
func (w *writer) Close(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	w.closeOld()
	if err := os.RemoveAll(w.staging); err != nil {
		return pathErr(w.path, err)
	}
	return nil
}

// ctxReader stops a stream when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
