package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/layer"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// Docker layer media types beyond those core/manifest names.
const (
	dockerLayerZstd = "application/vnd.docker.image.rootfs.diff.tar.zstd"
)

const (
	dockerManifestFile = "manifest.json"
	repositoriesFile   = "repositories"
)

// dockerItem is one image of manifest.json.
type dockerItem struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// dockerSource reads a docker-archive.
type dockerSource struct {
	t     *tarFile
	items []dockerItem
	oci   *ocispec.Index // Docker 25+ archives carry an OCI layout too

	mu        sync.Mutex
	resolved  map[int]ocispec.Descriptor
	manifests map[digest.Digest][]byte // manifests made from manifest.json
	blobs     map[digest.Digest]string // digest -> member name
}

func openDockerSource(ctx context.Context, path string) (*dockerSource, error) {
	t, err := openTar(ctx, path)
	if err != nil {
		return nil, err
	}
	s := &dockerSource{t: t, resolved: map[int]ocispec.Descriptor{}, manifests: map[digest.Digest][]byte{}, blobs: map[digest.Digest]string{}}
	b, err := t.readFile(dockerManifestFile, maxIndexSize)
	if err != nil {
		t.close()
		return nil, fmt.Errorf("%w (not a docker-archive)", err)
	}
	if err := json.Unmarshal(b, &s.items); err != nil {
		t.close()
		return nil, fmt.Errorf("archive %s: %s: %v: %w", path, dockerManifestFile, err, core.ErrInvalid)
	}
	for i, it := range s.items {
		if it.Config == "" {
			t.close()
			return nil, fmt.Errorf("archive %s: %s: image %d has no Config: %w", path, dockerManifestFile, i, core.ErrInvalid)
		}
	}
	if t.has(ocispec.ImageIndexFile) && t.has(ocispec.ImageLayoutFile) {
		if idx, err := readLayoutIndex(t); err == nil {
			s.oci = &idx
		}
	}
	return s, nil
}

func (s *dockerSource) Close(context.Context) error { return s.t.close() }

// normalizeTag turns "busybox", "busybox:1" or "docker.io/library/busybox:1"
// into the familiar "busybox:1" form; other strings are returned as given.
func normalizeTag(s string) string {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return s
	}
	if _, ok := named.(reference.Digested); ok {
		return s
	}
	return reference.FamiliarString(reference.TagNameOnly(named))
}

func (s *dockerSource) describe() string {
	var parts []string
	for i, it := range s.items {
		parts = append(parts, fmt.Sprintf("@%d %s", i, strings.Join(it.RepoTags, " ")))
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// pick returns the manifest.json position that ref selects: "" for the only
// image, "@N", or a NAME:TAG from RepoTags.
func (s *dockerSource) pick(ref string) (int, error) {
	switch {
	case ref == "":
		if len(s.items) != 1 {
			return 0, fmt.Errorf("archive %s: holds %d images, choose one with :NAME:TAG or :@N (%s): %w", s.t.path, len(s.items), s.describe(), core.ErrInvalid)
		}
		return 0, nil
	case strings.HasPrefix(ref, "@"):
		n, err := strconv.Atoi(ref[1:])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("archive %s: image index %q is not @N: %w", s.t.path, ref, core.ErrInvalid)
		}
		if n >= len(s.items) {
			return 0, fmt.Errorf("archive %s: no image @%d (have %s): %w", s.t.path, n, s.describe(), core.ErrNotFound)
		}
		return n, nil
	}
	want := normalizeTag(ref)
	for i, it := range s.items {
		for _, t := range it.RepoTags {
			if normalizeTag(t) == want {
				return i, nil
			}
		}
	}
	return 0, fmt.Errorf("archive %s: no image tagged %q (have %s): %w", s.t.path, ref, s.describe(), core.ErrNotFound)
}

// Resolve selects an image (see pick, or by the digest of the manifest
// Resolve serves for it) and returns its manifest: the original one when
// the archive carries an OCI layout (Docker 25+), else a Docker schema 2
// manifest made from manifest.json, as skopeo does.
func (s *dockerSource) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	if d := digest.Digest(ref); d.Validate() == nil {
		return s.resolveDigest(ctx, d)
	}
	i, err := s.pick(ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.resolveLocked(ctx, i)
}

func (s *dockerSource) resolveLocked(ctx context.Context, i int) (ocispec.Descriptor, error) {
	if d, ok := s.resolved[i]; ok {
		return d, nil
	}
	d, err := s.describeImage(ctx, s.items[i])
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	s.resolved[i] = d
	return d, nil
}

// resolveDigest finds the image whose served manifest has digest d,
// describing the images not described yet.
func (s *dockerSource) resolveDigest(ctx context.Context, d digest.Digest) (ocispec.Descriptor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var failed error // an image that cannot be described may be the one
	for i := range s.items {
		desc, err := s.resolveLocked(ctx, i)
		if err != nil {
			if failed == nil {
				failed = fmt.Errorf("looking for manifest %s: image @%d: %w", d, i, err)
			}
			continue
		}
		if desc.Digest == d {
			return desc, nil
		}
	}
	if failed != nil {
		return ocispec.Descriptor{}, failed
	}
	return ocispec.Descriptor{}, fmt.Errorf("archive %s: no image has manifest %s (docker-archive stores layers uncompressed, so an image copied in has another manifest digest than at its source; select it by NAME:TAG or @N): %w", s.t.path, d, core.ErrNotFound)
}

func (s *dockerSource) describeImage(ctx context.Context, it dockerItem) (ocispec.Descriptor, error) {
	cfg, err := s.t.readFile(it.Config, content.MaxConfigSize)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	cfgDesc := ocispec.Descriptor{MediaType: manifest.DockerConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	if s.oci != nil {
		if d, ok := s.findOCIManifest(cfgDesc.Digest); ok {
			return d, nil
		}
	}
	var c struct {
		RootFS struct {
			DiffIDs []digest.Digest `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("archive %s: config %s: %v: %w", s.t.path, it.Config, err, core.ErrInvalid)
	}
	s.blobs[cfgDesc.Digest] = it.Config
	m := schema2{SchemaVersion: 2, MediaType: manifest.DockerManifest, Config: s2desc(cfgDesc), Layers: []s2Desc{}}
	for j, name := range it.Layers {
		var diffID digest.Digest
		if j < len(c.RootFS.DiffIDs) {
			diffID = c.RootFS.DiffIDs[j]
		}
		d, err := s.describeLayer(ctx, name, diffID)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		s.blobs[d.Digest] = name
		m.Layers = append(m.Layers, s2desc(d))
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	d := ocispec.Descriptor{MediaType: manifest.DockerManifest, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	s.manifests[d.Digest] = raw
	return d, nil
}

// describeLayer finds a layer's digest and media type. A member stored
// under its digest (Docker 25+) or an uncompressed one with a diff ID is
// not hashed (the host verifies what it copies); others are.
func (s *dockerSource) describeLayer(ctx context.Context, name string, diffID digest.Digest) (ocispec.Descriptor, error) {
	rc, size, err := s.t.open(name, 0)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer rc.Close()
	br, c, err := layer.DetectReader(rc)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("archive %s: layer %s: %w", s.t.path, name, err)
	}
	d := ocispec.Descriptor{Size: size}
	switch c {
	case layer.Uncompressed, layer.Gzip:
		// skopeo and docker label docker-archive layers "tar.gzip"
		// whatever they hold (pullers sniff the compression); doing the
		// same gives the same manifest digest as skopeo.
		d.MediaType = manifest.DockerLayer
	case layer.Zstd:
		d.MediaType = dockerLayerZstd
	default:
		return ocispec.Descriptor{}, fmt.Errorf("archive %s: layer %s: %s compression: %w", s.t.path, name, c, core.ErrUnsupported)
	}
	if alg, hex, ok := strings.Cut(strings.TrimPrefix(name, "blobs/"), "/"); ok && strings.HasPrefix(name, "blobs/") {
		if dg := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex); dg.Validate() == nil {
			d.Digest = dg
			return d, nil
		}
	}
	if c == layer.Uncompressed && diffID.Validate() == nil {
		d.Digest = diffID
		return d, nil
	}
	dg, err := digest.SHA256.FromReader(ctxReader{ctx, br})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("archive %s: layer %s: %w", s.t.path, name, err)
	}
	d.Digest = dg
	return d, nil
}

// findOCIManifest looks in the archive's OCI layout for the image manifest
// with the given config.
func (s *dockerSource) findOCIManifest(cfg digest.Digest) (ocispec.Descriptor, bool) {
	var look func(ds []ocispec.Descriptor, depth int) (ocispec.Descriptor, bool)
	look = func(ds []ocispec.Descriptor, depth int) (ocispec.Descriptor, bool) {
		for _, d := range ds {
			raw, err := readManifestBlob(s.t, d)
			if err != nil {
				continue
			}
			m, err := manifest.Parse(raw, d.MediaType)
			if err != nil {
				continue
			}
			if m.IsIndex() {
				if depth < 2 {
					if found, ok := look(m.Manifests, depth+1); ok {
						return found, true
					}
				}
				continue
			}
			if m.Config.Digest != cfg {
				continue
			}
			complete := true
			for _, l := range m.Children() {
				if n, err := blobName(l.Digest); err != nil || !s.t.has(n) {
					complete = false
				}
			}
			if complete {
				return m.Descriptor(), true
			}
		}
		return ocispec.Descriptor{}, false
	}
	return look(s.oci.Manifests, 0)
}

// GetManifest serves a manifest Resolve made or found; on an endpoint
// that has not resolved it yet (the host may resolve on another), it
// looks for the image first.
func (s *dockerSource) GetManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	s.mu.Lock()
	raw, ok := s.manifests[desc.Digest]
	s.mu.Unlock()
	if ok {
		return bytes.Clone(raw), nil
	}
	raw, err := readManifestBlob(s.t, desc)
	if errors.Is(err, core.ErrNotFound) && desc.Digest.Validate() == nil {
		if _, rerr := s.resolveDigest(ctx, desc.Digest); rerr == nil {
			s.mu.Lock()
			raw, ok = s.manifests[desc.Digest]
			s.mu.Unlock()
			if ok {
				return bytes.Clone(raw), nil
			}
			return readManifestBlob(s.t, desc)
		}
	}
	return raw, err
}

func (s *dockerSource) GetBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	s.mu.Lock()
	name, ok := s.blobs[desc.Digest]
	s.mu.Unlock()
	if !ok {
		var err error
		if name, err = blobName(desc.Digest); err != nil {
			return nil, fmt.Errorf("archive %s: %w", s.t.path, err)
		}
		if !s.t.has(name) {
			// Members not named by digest (docker save before 25) are
			// known once the images are described, which another
			// endpoint may have done.
			if n, ok := s.findBlob(ctx, desc.Digest); ok {
				name = n
			}
		}
	}
	rc, _, err := s.t.open(name, offset)
	return rc, err
}

// findBlob describes every image and looks d up among their blobs.
func (s *dockerSource) findBlob(ctx context.Context, d digest.Digest) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.items {
		_, _ = s.resolveLocked(ctx, i) // a broken image has no blob to find
	}
	name, ok := s.blobs[d]
	return name, ok
}

// ListTags lists the RepoTags of every image.
func (s *dockerSource) ListTags(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	tags := []string{}
	for _, it := range s.items {
		for _, t := range it.RepoTags {
			if t = normalizeTag(t); !seen[t] {
				seen[t] = true
				tags = append(tags, t)
			}
		}
	}
	sort.Strings(tags)
	return tags, nil
}

// schema2 is a Docker schema 2 manifest with the field order skopeo and
// docker use, so that the same archive yields the same digest with either.
type schema2 struct {
	SchemaVersion int      `json:"schemaVersion"`
	MediaType     string   `json:"mediaType"`
	Config        s2Desc   `json:"config"`
	Layers        []s2Desc `json:"layers"`
}

type s2Desc struct {
	MediaType string        `json:"mediaType"`
	Size      int64         `json:"size"`
	Digest    digest.Digest `json:"digest"`
}

func s2desc(d ocispec.Descriptor) s2Desc {
	return s2Desc{MediaType: d.MediaType, Size: d.Size, Digest: d.Digest}
}

var (
	_ pluginapi.Source    = (*dockerSource)(nil)
	_ pluginapi.TagLister = (*dockerSource)(nil)
)
