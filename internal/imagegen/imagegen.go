// Package imagegen writes synthetic images into an OCI layout, streaming:
// layers of any size are generated, hashed and stored without being held in
// memory. The demo, the end-to-end tests and the benchmarks use it.
package imagegen

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/layout"
)

// Layer describes one generated layer: a tar holding one file of Size bytes,
// gzip-compressed. Incompressible content is random bytes stored without
// compression effort (gzip level 0), so generating a large image is quick;
// compressible content is repeated text compressed at the fastest level.
type Layer struct {
	Size         int64
	Compressible bool
}

// Spec describes an image to generate.
type Spec struct {
	Seed     uint64
	Layers   []Layer
	Platform ocispec.Platform
	Labels   map[string]string
	Env      []string
	// NoCreated leaves the config without a creation time.
	NoCreated bool
}

// Image is what Write produced.
type Image struct {
	Manifest ocispec.Descriptor
	Config   ocispec.Descriptor
	Layers   []ocispec.Descriptor
}

// Write generates spec into store and tags it (tag "" leaves it untagged).
func Write(ctx context.Context, store *layout.Store, tag string, spec Spec) (*Image, error) {
	img, err := writeImage(ctx, store, spec)
	if err != nil {
		return nil, err
	}
	if err := store.Tag(ctx, img.Manifest, tag); err != nil {
		return nil, err
	}
	return img, nil
}

func writeImage(ctx context.Context, store *layout.Store, spec Spec) (*Image, error) {
	if spec.Platform.OS == "" {
		spec.Platform = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	}
	img := &Image{}
	var diffIDs []digest.Digest
	for i, l := range spec.Layers {
		desc, diffID, err := writeLayer(ctx, store, spec.Seed*1000+uint64(i), l)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		img.Layers = append(img.Layers, desc)
		diffIDs = append(diffIDs, diffID)
	}
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cfg := ocispec.Image{
		Created:  &created,
		Platform: spec.Platform,
		Config:   ocispec.ImageConfig{Env: spec.Env, Labels: spec.Labels, Cmd: []string{"/bin/true"}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	}
	if spec.NoCreated {
		cfg.Created = nil
	}
	if cfg.RootFS.DiffIDs == nil {
		cfg.RootFS.DiffIDs = []digest.Digest{}
	}
	cfgRaw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	img.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfgRaw), Size: int64(len(cfgRaw))}
	if err := store.WriteBlobBytes(ctx, img.Config, cfgRaw); err != nil {
		return nil, err
	}
	layers := img.Layers
	if layers == nil {
		layers = []ocispec.Descriptor{}
	}
	m := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    img.Config,
		Layers:    layers,
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	img.Manifest = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := store.WriteBlobBytes(ctx, img.Manifest, raw); err != nil {
		return nil, err
	}
	return img, nil
}

// WriteIndex generates one image per platform (sharing nothing but the
// spec's shape) and an index over them, and tags the index.
func WriteIndex(ctx context.Context, store *layout.Store, tag string, spec Spec, platforms []ocispec.Platform) (ocispec.Descriptor, []*Image, error) {
	var imgs []*Image
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for i, p := range platforms {
		s := spec
		s.Platform = p
		s.Seed = spec.Seed + uint64(i+1)*7919
		img, err := writeImage(ctx, store, s)
		if err != nil {
			return ocispec.Descriptor{}, nil, err
		}
		imgs = append(imgs, img)
		d := img.Manifest
		d.Platform = &p
		idx.Manifests = append(idx.Manifests, d)
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := store.WriteBlobBytes(ctx, desc, raw); err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	if err := store.Tag(ctx, desc, tag); err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	return desc, imgs, nil
}

// writeLayer generates a layer into a temp file while hashing both the
// compressed and the uncompressed stream, then hands the file to the store.
func writeLayer(ctx context.Context, store *layout.Store, seed uint64, l Layer) (ocispec.Descriptor, digest.Digest, error) {
	tmp, err := os.CreateTemp("", "imagegen-*")
	if err != nil {
		return ocispec.Descriptor{}, "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	compressed := digest.Canonical.Digester()
	counter := &countWriter{}
	bw := bufio.NewWriterSize(io.MultiWriter(tmp, compressed.Hash(), counter), 1<<20)
	level := gzip.NoCompression
	if l.Compressible {
		level = gzip.BestSpeed
	}
	zw, _ := gzip.NewWriterLevel(bw, level)
	uncompressed := digest.Canonical.Digester()
	tw := tar.NewWriter(io.MultiWriter(zw, uncompressed.Hash()))
	hdr := &tar.Header{Name: fmt.Sprintf("data-%d.bin", seed), Mode: 0o644, Size: l.Size, ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if _, err := io.Copy(tw, io.LimitReader(content(seed, l.Compressible), l.Size)); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := tw.Close(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := zw.Close(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := bw.Flush(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	// Blobs are world-readable in a layout; the store may hard-link ours.
	if err := tmp.Chmod(0o644); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	if err := tmp.Close(); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: compressed.Digest(), Size: counter.n}
	if err := store.WriteBlobFile(ctx, desc, tmp.Name()); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	return desc, uncompressed.Digest(), nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// content is an endless deterministic stream: random bytes, or repeated
// text that compresses well.
func content(seed uint64, compressible bool) io.Reader {
	if compressible {
		return &textReader{line: []byte(fmt.Sprintf("stevedore synthetic layer %d: the quick brown fox jumps over the lazy dog\n", seed))}
	}
	return &randReader{r: rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24), 's', 't', 'v'})}
}

type randReader struct{ r *rand.ChaCha8 }

func (r *randReader) Read(p []byte) (int, error) { return r.r.Read(p) }

type textReader struct {
	line []byte
	off  int
}

func (t *textReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], t.line[t.off:])
		n += c
		t.off = (t.off + c) % len(t.line)
	}
	return n, nil
}
