package transporttest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Blob is content with its descriptor.
type Blob struct {
	Descriptor ocispec.Descriptor
	Data       []byte
}

// NewBlob describes data with a sha256 digest.
func NewBlob(mediaType string, data []byte) Blob {
	return Blob{
		Descriptor: ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))},
		Data:       data,
	}
}

// Artifact is anything the kit stores as one top-level object: an Image or
// an Index.
type Artifact interface {
	// Top is the top-level manifest or index.
	Top() Blob
	// ChildManifests are the manifests under Top (an index's images), which
	// are stored by digest before Top.
	ChildManifests() []Blob
	// Blobs are the non-manifest blobs (configs and layers), each once.
	Blobs() []Blob
}

// Image is a single-platform image: a manifest, its config and its layers.
type Image struct {
	Manifest Blob
	Config   Blob
	Layers   []Blob
	Platform ocispec.Platform
}

// Top implements Artifact.
func (im Image) Top() Blob { return im.Manifest }

// ChildManifests implements Artifact; an image has none.
func (im Image) ChildManifests() []Blob { return nil }

// Blobs implements Artifact: the config, then the layers.
func (im Image) Blobs() []Blob { return dedupe(append([]Blob{im.Config}, im.Layers...)) }

// Index is a multi-platform image: an index and its images.
type Index struct {
	Index  Blob
	Images []Image
}

// Top implements Artifact.
func (ix Index) Top() Blob { return ix.Index }

// ChildManifests implements Artifact: the images' manifests, in index order.
func (ix Index) ChildManifests() []Blob {
	var out []Blob
	for _, im := range ix.Images {
		out = append(out, im.Manifest)
	}
	return out
}

// Blobs implements Artifact: every config and layer of every image, once.
func (ix Index) Blobs() []Blob {
	var out []Blob
	for _, im := range ix.Images {
		out = append(out, im.Blobs()...)
	}
	return dedupe(out)
}

// BlobMap indexes every blob of a, manifests included, by digest.
func BlobMap(a Artifact) map[digest.Digest][]byte {
	m := map[digest.Digest][]byte{a.Top().Descriptor.Digest: a.Top().Data}
	for _, b := range append(a.ChildManifests(), a.Blobs()...) {
		m[b.Descriptor.Digest] = b.Data
	}
	return m
}

func dedupe(bs []Blob) []Blob {
	seen := map[digest.Digest]bool{}
	out := bs[:0:0]
	for _, b := range bs {
		if !seen[b.Descriptor.Digest] {
			seen[b.Descriptor.Digest] = true
			out = append(out, b)
		}
	}
	return out
}

// epoch is the fixed creation time of generated images, so that a seed
// always yields the same bytes.
var epoch = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

// RandomImage generates a linux/amd64 image with the given number of layers,
// each a gzip'd tar holding one file of layerSize random bytes. The same
// seed gives the same bytes (for one Go version: gzip output may change
// between releases).
func RandomImage(seed int64, layers int, layerSize int64) Image {
	return RandomImageFor(seed, layers, layerSize, ocispec.Platform{OS: "linux", Architecture: "amd64"})
}

// RandomImageFor is RandomImage for another platform.
func RandomImageFor(seed int64, layers int, layerSize int64, platform ocispec.Platform) Image {
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	im := Image{Platform: platform}
	var diffIDs []digest.Digest
	var history []ocispec.History
	for i := range layers {
		gz, diffID := randomLayer(rng, fmt.Sprintf("seed%d/layer%d.bin", seed, i), layerSize)
		im.Layers = append(im.Layers, NewBlob(ocispec.MediaTypeImageLayerGzip, gz))
		diffIDs = append(diffIDs, diffID)
		history = append(history, ocispec.History{Created: &epoch, CreatedBy: fmt.Sprintf("transporttest layer %d", i)})
	}
	cfg := ocispec.Image{
		Created:  &epoch,
		Platform: platform,
		Config:   ocispec.ImageConfig{Env: []string{fmt.Sprintf("TRANSPORTTEST_SEED=%d", seed)}, Cmd: []string{"/bin/true"}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
		History:  history,
	}
	im.Config = NewBlob(ocispec.MediaTypeImageConfig, mustJSON(cfg))
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: im.Config.Descriptor, Layers: []ocispec.Descriptor{}}
	m.SchemaVersion = 2
	for _, l := range im.Layers {
		m.Layers = append(m.Layers, l.Descriptor)
	}
	im.Manifest = NewBlob(ocispec.MediaTypeImageManifest, mustJSON(m))
	return im
}

// RandomIndex generates an index of two images, linux/amd64 and
// linux/arm64, made with RandomImageFor from seed and seed+1.
func RandomIndex(seed int64, layers int, layerSize int64) Index {
	var ix Index
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	for i, arch := range []string{"amd64", "arm64"} {
		p := ocispec.Platform{OS: "linux", Architecture: arch}
		im := RandomImageFor(seed+int64(i), layers, layerSize, p)
		ix.Images = append(ix.Images, im)
		d := im.Manifest.Descriptor
		d.Platform = &p
		idx.Manifests = append(idx.Manifests, d)
	}
	ix.Index = NewBlob(ocispec.MediaTypeImageIndex, mustJSON(idx))
	return ix
}

// RandomReferrer generates an artifact manifest (signature, SBOM...) whose
// subject is subject: artifactType set, the empty JSON config, and one layer
// of random bytes.
func RandomReferrer(seed int64, subject ocispec.Descriptor, artifactType string) Image {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xa27))
	payload := make([]byte, 256)
	fillRandom(rng, payload)
	layer := NewBlob("application/vnd.stevedore.transporttest.payload", payload)
	cfg := Blob{Descriptor: ocispec.DescriptorEmptyJSON, Data: []byte("{}")}
	sub := ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       cfg.Descriptor,
		Layers:       []ocispec.Descriptor{layer.Descriptor},
		Subject:      &sub,
		Annotations:  map[string]string{"org.opencontainers.image.created": epoch.Format(time.RFC3339)},
	}
	m.SchemaVersion = 2
	return Image{Manifest: NewBlob(ocispec.MediaTypeImageManifest, mustJSON(m)), Config: cfg, Layers: []Blob{layer}}
}

// randomLayer returns a gzip'd tar holding one file of size random bytes,
// and the digest of the uncompressed tar (the layer's diff ID).
func randomLayer(rng *rand.Rand, name string, size int64) (gz []byte, diffID digest.Digest) {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	mustDo(tw.WriteHeader(&tar.Header{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch}))
	mustDo(tw.WriteHeader(&tar.Header{Name: "data/" + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: epoch}))
	buf := make([]byte, 32<<10)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		fillRandom(rng, buf[:n])
		_, err := tw.Write(buf[:n])
		mustDo(err)
		left -= n
	}
	mustDo(tw.Close())
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	_, err := zw.Write(tb.Bytes())
	mustDo(err)
	mustDo(zw.Close())
	return zb.Bytes(), digest.FromBytes(tb.Bytes())
}

func fillRandom(rng *rand.Rand, p []byte) {
	for i := 0; i < len(p); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < len(p); j++ {
			p[i+j] = byte(v >> (8 * j))
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	mustDo(err)
	return b
}

// mustDo panics on errors that cannot happen when writing to memory.
func mustDo(err error) {
	if err != nil {
		panic("transporttest: " + err.Error())
	}
}
