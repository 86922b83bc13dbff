// Package layertest makes small deterministic layers and images for tests of
// code that reads or writes layers, archives and layouts. Test-only helper:
// nothing outside _test.go files should import it.
package layertest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/layer"
	"github.com/stevedore-oci/stevedore/core/layout"
)

// Blob is content with its descriptor.
type Blob struct {
	Desc ocispec.Descriptor
	Data []byte
}

func newBlob(mt string, b []byte) Blob {
	return Blob{Desc: ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}, Data: b}
}

// Image is a single-platform image.
type Image struct {
	Manifest Blob
	Config   Blob
	Layers   []Blob
	DiffIDs  []digest.Digest
}

// Blobs returns the config and the layers.
func (i Image) Blobs() []Blob { return append([]Blob{i.Config}, i.Layers...) }

// Options shape NewImage.
type Options struct {
	Layers       int    // default 2
	Arch         string // default amd64
	Docker       bool   // Docker schema 2 media types instead of OCI
	Uncompressed bool   // plain tar layers instead of gzip
}

// Tar returns a deterministic uncompressed tar of a few files derived from
// seed.
func Tar(seed string, files int) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatPAX})
	for i := 0; i < files; i++ {
		body := bytes.Repeat([]byte(fmt.Sprintf("%s file %d\n", seed, i)), 50+i)
		_ = tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("data/%s-%d.txt", seed, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), Format: tar.FormatPAX})
		_, _ = tw.Write(body)
	}
	_ = tw.Close()
	return buf.Bytes()
}

// Gzip compresses b.
func Gzip(b []byte) []byte {
	var buf bytes.Buffer
	w := layer.NewGzipWriter(&buf)
	_, _ = w.Write(b)
	_ = w.Close()
	return buf.Bytes()
}

// NewImage builds an image whose content depends only on seed and opts.
func NewImage(seed string, opts Options) Image {
	if opts.Layers == 0 {
		opts.Layers = 2
	}
	if opts.Arch == "" {
		opts.Arch = "amd64"
	}
	mtManifest, mtConfig, mtLayer := ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageLayerGzip
	if opts.Uncompressed {
		mtLayer = ocispec.MediaTypeImageLayer
	}
	if opts.Docker {
		mtManifest, mtConfig, mtLayer = "application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.container.image.v1+json", "application/vnd.docker.image.rootfs.diff.tar.gzip"
		if opts.Uncompressed {
			mtLayer = "application/vnd.docker.image.rootfs.diff.tar"
		}
	}
	var img Image
	for i := 0; i < opts.Layers; i++ {
		plain := Tar(fmt.Sprintf("%s-%s-%d", seed, opts.Arch, i), 2+i)
		img.DiffIDs = append(img.DiffIDs, digest.FromBytes(plain))
		data := plain
		if !opts.Uncompressed {
			data = Gzip(plain)
		}
		img.Layers = append(img.Layers, newBlob(mtLayer, data))
	}
	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: opts.Arch},
		Config:   ocispec.ImageConfig{Cmd: []string{"/bin/sh"}, Labels: map[string]string{"seed": seed}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: img.DiffIDs},
	}
	cb, _ := json.Marshal(cfg)
	img.Config = newBlob(mtConfig, cb)
	m := struct {
		SchemaVersion int                  `json:"schemaVersion"`
		MediaType     string               `json:"mediaType"`
		Config        ocispec.Descriptor   `json:"config"`
		Layers        []ocispec.Descriptor `json:"layers"`
	}{2, mtManifest, img.Config.Desc, nil}
	for _, l := range img.Layers {
		m.Layers = append(m.Layers, l.Desc)
	}
	mb, _ := json.Marshal(m)
	img.Manifest = newBlob(mtManifest, mb)
	img.Manifest.Desc.Platform = &ocispec.Platform{OS: "linux", Architecture: opts.Arch}
	return img
}

// Index is a multi-platform image.
type Index struct {
	Index  Blob
	Images []Image
}

// NewIndex builds an index of one image per architecture.
func NewIndex(seed string, archs ...string) Index {
	var ix Index
	var entries []ocispec.Descriptor
	for _, a := range archs {
		img := NewImage(seed, Options{Arch: a})
		ix.Images = append(ix.Images, img)
		entries = append(entries, img.Manifest.Desc)
	}
	b, _ := json.Marshal(ocispec.Index{Versioned: specsV2, MediaType: ocispec.MediaTypeImageIndex, Manifests: entries})
	ix.Index = newBlob(ocispec.MediaTypeImageIndex, b)
	return ix
}

// Blobs returns every blob and child manifest of the index (not the index).
func (ix Index) Blobs() []Blob {
	var out []Blob
	for _, img := range ix.Images {
		out = append(out, img.Blobs()...)
		out = append(out, img.Manifest)
	}
	return out
}

// WriteImage stores img in the OCI layout dir (created if needed) and tags
// it.
func WriteImage(dir, tag string, img Image) error {
	return write(dir, tag, img.Manifest, append(img.Blobs(), img.Manifest))
}

// WriteIndex stores ix in the OCI layout dir and tags the index.
func WriteIndex(dir, tag string, ix Index) error {
	return write(dir, tag, ix.Index, append(ix.Blobs(), ix.Index))
}

func write(dir, tag string, top Blob, blobs []Blob) error {
	ctx := context.Background()
	s, err := layout.Create(dir)
	if err != nil {
		return err
	}
	for _, b := range blobs {
		if err := s.WriteBlobBytes(ctx, b.Desc, b.Data); err != nil {
			return err
		}
	}
	d := top.Desc
	d.Platform = nil
	return s.Tag(ctx, d, tag)
}

var specsV2 = specsVersioned()
