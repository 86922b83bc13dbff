package ziplayout

import (
	"archive/zip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// maxIndexSize caps index.json, which is read into memory.
const maxIndexSize = 64 << 20

// archive is an opened zip of an image layout.
type archive struct {
	path  string
	f     *os.File // ReadAt is safe for concurrent use: blobs are sections of it
	zr    *zip.Reader
	files map[string]*zip.File
	index ocispec.Index
}

func openArchive(path string) (*archive, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, pathErr(path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, pathErr(path, err)
	}
	zr, err := zip.NewReader(f, st.Size())
	if err != nil {
		f.Close()
		if errors.Is(err, zip.ErrFormat) {
			return nil, fmt.Errorf("zip %s: not a zip archive: %w", path, core.ErrInvalid)
		}
		return nil, pathErr(path, err)
	}
	a := &archive{path: path, f: f, zr: zr, files: make(map[string]*zip.File, len(zr.File))}
	for _, zf := range zr.File {
		a.files[zf.Name] = zf
	}
	if err := a.readLayout(); err != nil {
		f.Close()
		return nil, err
	}
	return a, nil
}

// readLayout checks oci-layout and reads index.json.
func (a *archive) readLayout() error {
	raw, err := a.readEntry(ocispec.ImageLayoutFile, 1<<20)
	if err != nil {
		return fmt.Errorf("zip %s: not an OCI image layout: %w", a.path, err)
	}
	var l ocispec.ImageLayout
	if err := json.Unmarshal(raw, &l); err != nil || l.Version == "" {
		return fmt.Errorf("zip %s: %s is not an image layout marker: %w", a.path, ocispec.ImageLayoutFile, core.ErrInvalid)
	}
	raw, err = a.readEntry(ocispec.ImageIndexFile, maxIndexSize)
	if err != nil {
		return fmt.Errorf("zip %s: %w", a.path, err)
	}
	if err := json.Unmarshal(raw, &a.index); err != nil {
		return fmt.Errorf("zip %s: %s: %v: %w", a.path, ocispec.ImageIndexFile, err, core.ErrInvalid)
	}
	return nil
}

// readEntry reads a small entry whole, refusing entries over max bytes.
func (a *archive) readEntry(name string, max int64) ([]byte, error) {
	zf := a.files[name]
	if zf == nil {
		return nil, fmt.Errorf("no %s: %w", name, core.ErrNotFound)
	}
	if zf.UncompressedSize64 > uint64(max) {
		return nil, fmt.Errorf("%s is %d bytes, over the %d byte limit: %w", name, zf.UncompressedSize64, max, core.ErrTooLarge)
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

func (a *archive) close() error { return a.f.Close() }

// blobName is the entry name of a blob in the layout.
func blobName(d digest.Digest) string {
	return ocispec.ImageBlobsDir + "/" + d.Algorithm().String() + "/" + d.Encoded()
}

func checkDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %v: %w", d, err, core.ErrInvalid)
	}
	return nil
}

func (a *archive) hasBlob(d digest.Digest) bool { return a.files[blobName(d)] != nil }

// openBlob returns the blob's bytes from offset. Stored (uncompressed)
// entries are read straight from their place in the file; compressed ones,
// from a zip made by another tool, are decompressed and skipped forward.
func (a *archive) openBlob(d digest.Digest, offset int64) (io.ReadCloser, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	zf := a.files[blobName(d)]
	if zf == nil {
		return nil, fmt.Errorf("zip %s: blob %s: %w", a.path, d, core.ErrNotFound)
	}
	size := int64(zf.UncompressedSize64)
	if offset < 0 || offset > size {
		return nil, fmt.Errorf("zip %s: blob %s: offset %d outside its %d bytes: %w", a.path, d, offset, size, core.ErrInvalid)
	}
	if zf.Method == zip.Store && zf.CompressedSize64 == zf.UncompressedSize64 {
		start, err := zf.DataOffset()
		if err != nil {
			return nil, fmt.Errorf("zip %s: blob %s: %w", a.path, d, err)
		}
		return io.NopCloser(io.NewSectionReader(a.f, start+offset, size-offset)), nil
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, fmt.Errorf("zip %s: blob %s: %w", a.path, d, err)
	}
	if _, err := io.CopyN(io.Discard, rc, offset); err != nil {
		rc.Close()
		return nil, fmt.Errorf("zip %s: blob %s: skip to %d: %w", a.path, d, offset, err)
	}
	return rc, nil
}

// readManifest reads a manifest blob whole (manifests are small and capped).
func (a *archive) readManifest(d digest.Digest) ([]byte, error) {
	if err := checkDigest(d); err != nil {
		return nil, err
	}
	b, err := a.readEntry(blobName(d), content.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("zip %s: manifest %s: %w", a.path, d, err)
	}
	return b, nil
}

// resolve finds a top-level image by tag or digest, or the only one for "".
func (a *archive) resolve(ref string) (ocispec.Descriptor, error) {
	entries := a.index.Manifests
	if ref == "" {
		if len(entries) == 1 {
			return topDesc(entries[0]), nil
		}
		return ocispec.Descriptor{}, fmt.Errorf("zip %s holds %d images: name one by tag (%v) or digest: %w",
			a.path, len(entries), tags(entries), core.ErrInvalid)
	}
	if d, err := digest.Parse(ref); err == nil {
		for _, e := range entries {
			if e.Digest == d {
				return topDesc(e), nil
			}
		}
		// Not top-level: a manifest inside an index, addressed by digest.
		if !a.hasBlob(d) {
			return ocispec.Descriptor{}, fmt.Errorf("zip %s: %s: %w", a.path, d, core.ErrNotFound)
		}
		raw, err := a.readManifest(d)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		mt, err := manifest.DetectMediaType(raw)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("zip %s: %s is not a manifest: %w", a.path, d, err)
		}
		return ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw))}, nil
	}
	for _, e := range entries {
		if e.Annotations[ocispec.AnnotationRefName] == ref {
			return topDesc(e), nil
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("zip %s: tag %q: %w", a.path, ref, core.ErrNotFound)
}

// topDesc is what Resolve reports of an index.json entry.
func topDesc(e ocispec.Descriptor) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: e.MediaType, Digest: e.Digest, Size: e.Size, ArtifactType: e.ArtifactType}
}

// tags lists the ref names of entries, sorted, without duplicates.
func tags(entries []ocispec.Descriptor) []string {
	out := []string{}
	for _, e := range entries {
		if t := e.Annotations[ocispec.AnnotationRefName]; t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// reader is a read-mode endpoint: a Source and a TagLister.
type reader struct {
	a *archive
}

var (
	_ pluginapi.Source    = (*reader)(nil)
	_ pluginapi.TagLister = (*reader)(nil)
)

func (r *reader) Close(context.Context) error { return r.a.close() }

func (r *reader) Resolve(_ context.Context, ref string) (ocispec.Descriptor, error) {
	return r.a.resolve(ref)
}

func (r *reader) GetManifest(_ context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > content.MaxManifestSize {
		return nil, fmt.Errorf("zip %s: manifest %s is %d bytes, over the %d byte limit: %w", r.a.path, desc.Digest, desc.Size, content.MaxManifestSize, core.ErrTooLarge)
	}
	return r.a.readManifest(desc.Digest)
}

func (r *reader) GetBlob(_ context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	return r.a.openBlob(desc.Digest, offset)
}

func (r *reader) ListTags(context.Context) ([]string, error) { return tags(r.a.index.Manifests), nil }
