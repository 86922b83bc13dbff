package archive

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/layer"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// dockerDest writes a docker-archive. Layers are stored uncompressed, as
// the format requires, under blobs/sha256/<diff ID>; configs under
// blobs/sha256/<digest>. Several images (several PutManifest calls with
// different refs) share one archive, and writing to an existing archive
// adds to it (see carryOver).
type dockerDest struct {
	w   *tarWriter
	log hclog.Logger

	mu      sync.Mutex
	diffIDs map[digest.Digest]stored // blob digest -> uncompressed member
	images  []dockerItem             // manifest.json: carried over, then in PutManifest order
	byCfg   map[digest.Digest]int    // config digest -> position in images
}

// stored is an uncompressed layer as written.
type stored struct {
	diffID digest.Digest
	size   int64
}

func newDockerDest(ctx context.Context, path string, log hclog.Logger) (*dockerDest, error) {
	w, err := newTarWriter(ctx, path)
	if err != nil {
		return nil, err
	}
	d := &dockerDest{w: w, log: log, diffIDs: map[digest.Digest]stored{}, byCfg: map[digest.Digest]int{}}
	if err := d.carryOver(ctx, path); err != nil {
		w.discard()
		return nil, err
	}
	return d, nil
}

// carryOver copies the images of an existing archive at path into the new
// one, so that writing to an archive adds to it, as with oci-archive (a
// tag written again moves to the new image). Only what manifest.json names
// is carried, under the same member names: the images of a Docker 25+
// archive are then served with manifests made from manifest.json (same
// config digests). A file there that is not a docker-archive is refused
// rather than overwritten; an empty one is written over.
func (d *dockerDest) carryOver(ctx context.Context, path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) || err == nil && fi.Size() == 0 {
		return nil
	}
	old, err := openDockerSource(ctx, path)
	if err != nil {
		return fmt.Errorf("archive %s: exists and is not a readable docker-archive, refusing to replace it (%s): %w", path, causeIn(path, err), core.ErrExists)
	}
	defer old.Close(ctx)
	if err := d.w.compressAs(old.t); err != nil {
		return err
	}
	for i, it := range old.items {
		cfg, err := old.t.readFile(it.Config, content.MaxConfigSize)
		if err != nil {
			return fmt.Errorf("archive %s: carry over image @%d: %w", path, i, err)
		}
		item := dockerItem{RepoTags: []string{}, Layers: []string{}}
		for j, name := range append([]string{it.Config}, it.Layers...) {
			clean, err := d.carryMember(ctx, old, name)
			if err != nil {
				return fmt.Errorf("archive %s: carry over image @%d: %w", path, i, err)
			}
			if j == 0 {
				item.Config = clean
			} else {
				item.Layers = append(item.Layers, clean)
			}
		}
		for _, t := range it.RepoTags {
			item.RepoTags = append(item.RepoTags, normalizeTag(t))
		}
		d.addImageLocked(digest.FromBytes(cfg), item)
	}
	return nil
}

// carryMember copies the file name of old into the new archive, under its
// cleaned name, which it returns.
func (d *dockerDest) carryMember(ctx context.Context, old *dockerSource, name string) (string, error) {
	clean, err := layer.CleanName(name)
	if err != nil {
		return "", err
	}
	rc, size, err := old.t.open(name, 0)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	d.w.mu.Lock()
	defer d.w.mu.Unlock()
	if s, ok := d.w.entries[clean]; ok && s == size {
		return clean, nil // shared by several images
	}
	if err := d.w.appendLocked(clean, size, ctxReader{ctx, rc}, nil); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return clean, nil
}

// addImageLocked adds item to manifest.json, or its tags to the entry of
// the same config (one entry, several tags). Its tags are taken away from
// every other entry: a tag names one image.
func (d *dockerDest) addImageLocked(cfg digest.Digest, item dockerItem) {
	for i := range d.images {
		d.images[i].RepoTags = slices.DeleteFunc(d.images[i].RepoTags, func(t string) bool {
			return slices.Contains(item.RepoTags, t)
		})
	}
	if i, ok := d.byCfg[cfg]; ok {
		for _, t := range item.RepoTags {
			d.images[i].RepoTags = append(d.images[i].RepoTags, t)
		}
		return
	}
	d.byCfg[cfg] = len(d.images)
	d.images = append(d.images, item)
}

func isConfig(mt string) bool { return mt == manifest.DockerConfig || mt == manifest.OCIConfig }

func (d *dockerDest) HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	if err := desc.Digest.Validate(); err != nil {
		return false, fmt.Errorf("archive %s: digest %q: %w", d.w.final, desc.Digest, core.ErrInvalid)
	}
	d.mu.Lock()
	_, ok := d.diffIDs[desc.Digest]
	d.mu.Unlock()
	if ok {
		return true, nil
	}
	name, _ := blobName(desc.Digest)
	return isConfig(desc.MediaType) && d.w.has(name, desc.Size), nil
}

// PutBlob stores a config as is, and a layer decompressed: a gzip or zstd
// layer is verified while it is decompressed into a spill file, whose
// digest (the diff ID) names it in the archive.
func (d *dockerDest) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("archive %s: digest %q: %w", d.w.final, desc.Digest, core.ErrInvalid)
	}
	if isConfig(desc.MediaType) {
		name, _ := blobName(desc.Digest)
		if err := d.w.putVerified(ctx, name, desc, r); err != nil {
			return fmt.Errorf("archive %s: config %s: %w", d.w.final, desc.Digest, err)
		}
		return nil
	}
	if manifest.IsNonDistributable(desc.MediaType) || strings.Contains(desc.MediaType, "+encrypted") {
		return fmt.Errorf("archive %s: layer %s of type %s cannot be stored in a docker-archive: %w", d.w.final, desc.Digest, desc.MediaType, core.ErrUnsupported)
	}
	vr := verifier(ctx, r, desc)
	br, c, err := layer.DetectReader(vr)
	if err != nil {
		return fmt.Errorf("archive %s: layer %s: %w", d.w.final, desc.Digest, err)
	}
	if c == layer.Uncompressed {
		name, _ := blobName(desc.Digest)
		if desc.Digest.Algorithm() == digest.SHA256 {
			if err := d.w.putVerified(ctx, name, desc, br); err != nil {
				return fmt.Errorf("archive %s: layer %s: %w", d.w.final, desc.Digest, err)
			}
			d.mu.Lock()
			d.diffIDs[desc.Digest] = stored{diffID: desc.Digest, size: desc.Size}
			d.mu.Unlock()
			return nil
		}
	}
	dr, err := layer.NewDecompressor(br, c)
	if err != nil {
		return fmt.Errorf("archive %s: layer %s: %w", d.w.final, desc.Digest, err)
	}
	defer dr.Close()
	f, err := os.CreateTemp(d.w.stage, "layer-*")
	if err != nil {
		return fmt.Errorf("archive %s: %w", d.w.final, err)
	}
	defer d.w.dropSpill(f)
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), dr)
	if err == nil {
		// The compressed stream may go on after the end of the data
		// (padding); all of it must be read to be verified.
		_, err = io.Copy(io.Discard, br)
	}
	if err == nil && !vr.Verified() {
		err = fmt.Errorf("stream ended unverified: %w", core.ErrInvalid)
	}
	if err != nil {
		return fmt.Errorf("archive %s: layer %s: %w", d.w.final, desc.Digest, err)
	}
	diffID := digest.NewDigest(digest.SHA256, h)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("archive %s: %w", d.w.final, err)
	}
	name, _ := blobName(diffID)
	if err := d.w.putFile(name, f, n); err != nil {
		return fmt.Errorf("archive %s: layer %s: %w", d.w.final, desc.Digest, err)
	}
	d.mu.Lock()
	d.diffIDs[desc.Digest] = stored{diffID: diffID, size: n}
	d.mu.Unlock()
	return nil
}

// PutManifest records an image of the archive: its config, its layers
// (already stored uncompressed) and, from ref, its RepoTags. Indexes are
// refused: a docker-archive holds single-platform images.
func (d *dockerDest) PutManifest(ctx context.Context, desc ocispec.Descriptor, raw []byte, ref string) error {
	if err := content.VerifyBytes(raw, desc); err != nil {
		return fmt.Errorf("archive %s: manifest %s: %w", d.w.final, desc.Digest, err)
	}
	m, err := manifest.Parse(raw, desc.MediaType)
	if err != nil {
		return fmt.Errorf("archive %s: manifest %s: %w", d.w.final, desc.Digest, err)
	}
	if m.IsIndex() {
		return fmt.Errorf("archive %s: a docker-archive holds single-platform images, not the index %s; choose a platform: %w", d.w.final, desc.Digest, core.ErrUnsupported)
	}
	if !isConfig(m.Config.MediaType) {
		return fmt.Errorf("archive %s: manifest %s is not a container image (config %s): %w", d.w.final, desc.Digest, m.Config.MediaType, core.ErrUnsupported)
	}
	cfgName, _ := blobName(m.Config.Digest)
	if !d.w.has(cfgName, m.Config.Size) {
		return fmt.Errorf("archive %s: manifest %s: config %s was not stored: %w", d.w.final, desc.Digest, m.Config.Digest, core.ErrNotFound)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	item := dockerItem{Config: cfgName, RepoTags: []string{}, Layers: []string{}}
	out := schema2{SchemaVersion: 2, MediaType: manifest.DockerManifest, Config: s2Desc{MediaType: manifest.DockerConfig, Size: m.Config.Size, Digest: m.Config.Digest}, Layers: []s2Desc{}}
	for _, l := range m.Layers {
		st, ok := d.diffIDs[l.Digest]
		if !ok {
			return fmt.Errorf("archive %s: manifest %s: layer %s was not stored: %w", d.w.final, desc.Digest, l.Digest, core.ErrNotFound)
		}
		name, _ := blobName(st.diffID)
		item.Layers = append(item.Layers, name)
		out.Layers = append(out.Layers, s2Desc{MediaType: manifest.DockerLayer, Size: st.size, Digest: st.diffID})
	}
	if tag := repoTag(ref); tag != "" {
		item.RepoTags = append(item.RepoTags, tag)
	}
	d.addImageLocked(m.Config.Digest, item)
	if b, err := json.Marshal(out); err == nil && digest.FromBytes(b) != desc.Digest {
		d.log.Warn(fmt.Sprintf("docker-archive %s: layers are stored uncompressed as the format requires, so the manifest digest changes from %s to %s; the config digest (image ID) %s is unchanged", d.w.final, desc.Digest, digest.FromBytes(b), m.Config.Digest))
	}
	return nil
}

// repoTag turns a destination ref into a RepoTags entry; "" and digests
// give none.
func repoTag(ref string) string {
	if ref == "" || strings.HasPrefix(ref, "@") || digest.Digest(ref).Validate() == nil {
		return ""
	}
	return normalizeTag(ref)
}

// Commit writes manifest.json and repositories and moves the archive into
// place.
func (d *dockerDest) Commit(ctx context.Context) error {
	d.mu.Lock()
	images := d.images
	d.mu.Unlock()
	if len(images) == 0 {
		return fmt.Errorf("archive %s: no image was written: %w", d.w.final, core.ErrInvalid)
	}
	b, err := json.Marshal(images)
	if err != nil {
		return fmt.Errorf("archive %s: %w", d.w.final, err)
	}
	if err := d.w.putBytes(dockerManifestFile, b); err != nil {
		return fmt.Errorf("archive %s: %w", d.w.final, err)
	}
	// repositories (legacy): repository -> tag -> top layer ID.
	repos := map[string]map[string]string{}
	for _, it := range images {
		if len(it.Layers) == 0 {
			continue
		}
		top := layerID(it.Layers[len(it.Layers)-1])
		for _, t := range it.RepoTags {
			i := strings.LastIndex(t, ":")
			if i < 0 {
				continue
			}
			if repos[t[:i]] == nil {
				repos[t[:i]] = map[string]string{}
			}
			repos[t[:i]][t[i+1:]] = top
		}
	}
	if len(repos) > 0 {
		b, _ := json.Marshal(repos)
		if err := d.w.putBytes(repositoriesFile, b); err != nil {
			return fmt.Errorf("archive %s: %w", d.w.final, err)
		}
	}
	return d.w.commit()
}

// layerID is the legacy ID of a layer member: the hex of
// blobs/sha256/<hex>, the directory of <id>/layer.tar (docker save before
// Docker 25).
func layerID(name string) string {
	if hex, ok := strings.CutPrefix(name, "blobs/sha256/"); ok {
		return hex
	}
	return strings.TrimSuffix(name, "/layer.tar")
}

func (d *dockerDest) Close(ctx context.Context) error { return d.w.discard() }

var (
	_ pluginapi.Destination = (*dockerDest)(nil)
	_ pluginapi.Committer   = (*dockerDest)(nil)
)
