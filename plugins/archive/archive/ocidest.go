package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// ociDest writes an oci-archive.
type ociDest struct {
	w *tarWriter

	mu        sync.Mutex
	entries   []ocispec.Descriptor // index.json
	manifests map[digest.Digest][]byte
}

func newOCIDest(ctx context.Context, path string) (*ociDest, error) {
	w, err := newTarWriter(ctx, path)
	if err != nil {
		return nil, err
	}
	d := &ociDest{w: w, manifests: map[digest.Digest][]byte{}}
	b, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err := w.putBytes(ocispec.ImageLayoutFile, b); err != nil {
		w.discard()
		return nil, fmt.Errorf("archive %s: %w", path, err)
	}
	if err := d.carryOver(path); err != nil {
		w.discard()
		return nil, err
	}
	return d, nil
}

// carryOver copies the images of an existing archive at path into the new
// one, so that writing to an archive adds to it (names written again are
// replaced). A file there that is not an oci-archive is refused rather
// than overwritten; an empty one (mktemp's) is written over, as with
// docker-archive.
func (d *ociDest) carryOver(path string) error {
	if fi, err := os.Stat(path); errors.Is(err, os.ErrNotExist) || err == nil && fi.Size() == 0 {
		return nil
	}
	old, err := openOCISource(context.Background(), path)
	if err != nil {
		return fmt.Errorf("archive %s: exists and is not a readable oci-archive, refusing to replace it (%s): %w", path, causeIn(path, err), core.ErrExists)
	}
	defer old.Close(context.Background())
	if err := d.w.compressAs(old.t); err != nil {
		return err
	}
	for _, name := range old.t.ix.Names() {
		if !strings.HasPrefix(name, "blobs/") {
			continue
		}
		e, err := old.t.ix.Lookup(name)
		if err != nil {
			continue // directories
		}
		rc, _, err := old.t.open(name, 0)
		if err != nil {
			return err
		}
		d.w.mu.Lock()
		err = d.w.appendLocked(name, e.Size, rc, nil)
		d.w.mu.Unlock()
		rc.Close()
		if err != nil {
			return fmt.Errorf("archive %s: carry over %s: %w", path, name, err)
		}
	}
	d.entries = append(d.entries, old.index.Manifests...)
	return nil
}

func (d *ociDest) HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	name, err := blobName(desc.Digest)
	if err != nil {
		return false, fmt.Errorf("archive %s: %w", d.w.final, err)
	}
	return d.w.has(name, desc.Size), nil
}

func (d *ociDest) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	name, err := blobName(desc.Digest)
	if err != nil {
		return fmt.Errorf("archive %s: %w", d.w.final, err)
	}
	if err := d.w.putVerified(ctx, name, desc, r); err != nil {
		return fmt.Errorf("archive %s: blob %s: %w", d.w.final, desc.Digest, err)
	}
	return nil
}

// PutManifest stores a manifest; a tag names it in index.json, its own
// digest records it untagged, "" stores it as a child only.
func (d *ociDest) PutManifest(ctx context.Context, desc ocispec.Descriptor, raw []byte, ref string) error {
	if err := content.VerifyBytes(raw, desc); err != nil {
		return fmt.Errorf("archive %s: manifest %s: %w", d.w.final, desc.Digest, err)
	}
	name, err := blobName(desc.Digest)
	if err != nil {
		return fmt.Errorf("archive %s: %w", d.w.final, err)
	}
	if desc.MediaType == "" {
		if desc.MediaType, err = manifest.DetectMediaType(raw); err != nil {
			return fmt.Errorf("archive %s: manifest %s: %w", d.w.final, desc.Digest, err)
		}
	}
	if err := d.w.putBytes(name, raw); err != nil {
		return fmt.Errorf("archive %s: manifest %s: %w", d.w.final, desc.Digest, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.manifests[desc.Digest] = raw
	if ref == "" {
		var h struct {
			Subject *ocispec.Descriptor `json:"subject"`
		}
		if json.Unmarshal(raw, &h) != nil || h.Subject == nil {
			return nil // a child of an index: stored by digest only
		}
		// A referrer is found only from index.json, as in a layout:
		// recorded untagged.
	}
	entry := ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size, ArtifactType: desc.ArtifactType, Platform: desc.Platform}
	if ref != "" && ref != desc.Digest.String() {
		entry.Annotations = map[string]string{ocispec.AnnotationRefName: ref}
	}
	d.addEntry(entry)
	return nil
}

// addEntry puts entry into index.json, replacing an entry of the same name
// (or the same untagged digest).
func (d *ociDest) addEntry(entry ocispec.Descriptor) {
	for i, e := range d.entries {
		if refName(e) == refName(entry) && (refName(e) != "" || e.Digest == entry.Digest) {
			d.entries[i] = entry
			return
		}
	}
	d.entries = append(d.entries, entry)
}

// Commit writes index.json and moves the archive into place. Manifests
// stored without any name, that no other manifest points to, are recorded
// untagged so that the archive is never empty of images.
func (d *ociDest) Commit(ctx context.Context) error {
	d.mu.Lock()
	if len(d.entries) == 0 {
		for _, root := range roots(d.manifests) {
			raw := d.manifests[root]
			desc, err := manifest.Descriptor(raw, "")
			if err != nil {
				d.mu.Unlock()
				return fmt.Errorf("archive %s: %w", d.w.final, err)
			}
			d.addEntry(desc)
		}
	}
	entries := d.entries
	d.mu.Unlock()
	if entries == nil {
		entries = []ocispec.Descriptor{}
	}
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: entries}
	idx.SchemaVersion = 2
	b, err := json.Marshal(idx)
	if err != nil {
		return fmt.Errorf("archive %s: %w", d.w.final, err)
	}
	if err := d.w.putBytes(ocispec.ImageIndexFile, b); err != nil {
		return fmt.Errorf("archive %s: %w", d.w.final, err)
	}
	return d.w.commit()
}

func (d *ociDest) Close(ctx context.Context) error { return d.w.discard() }

// roots returns the manifests no other manifest in the set points to, in a
// stable order.
func roots(manifests map[digest.Digest][]byte) []digest.Digest {
	children := map[digest.Digest]bool{}
	for _, raw := range manifests {
		if m, err := manifest.Parse(raw, ""); err == nil && m.IsIndex() {
			for _, c := range m.Manifests {
				children[c.Digest] = true
			}
		}
	}
	var out []digest.Digest
	for d := range manifests {
		if !children[d] {
			out = append(out, d)
		}
	}
	sortDigests(out)
	return out
}

var (
	_ pluginapi.Destination = (*ociDest)(nil)
	_ pluginapi.Committer   = (*ociDest)(nil)
	_ pluginapi.Source      = (*ociSource)(nil)
	_ pluginapi.TagLister   = (*ociSource)(nil)
)

// causeIn is err's text without the "archive PATH: " the outer error
// already says.
func causeIn(path string, err error) string {
	return strings.TrimPrefix(err.Error(), "archive "+path+": ")
}
