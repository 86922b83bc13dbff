package layout

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// testBlob is content with its descriptor.
type testBlob struct {
	desc ocispec.Descriptor
	data []byte
}

func newBlob(mediaType string, data []byte) testBlob {
	return testBlob{desc: ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}, data: data}
}

// testImage is a small valid OCI image: gzip'd tar layers, a config whose
// diff_ids match, and a manifest.
type testImage struct {
	manifest testBlob
	config   testBlob
	layers   []testBlob
}

func (im testImage) blobs() []testBlob { return append([]testBlob{im.config}, im.layers...) }

func makeImage(t testing.TB, seed uint64, nLayers int, size int) testImage {
	return makeImageFor(t, seed, nLayers, size, "amd64")
}

func makeImageFor(t testing.TB, seed uint64, nLayers int, size int, arch string) testImage {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 42))
	var im testImage
	var diffIDs []digest.Digest
	for i := range nLayers {
		payload := make([]byte, size)
		for j := range payload {
			payload[j] = byte(rng.Uint32())
		}
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		name := filepath.Join("data", "file"+string(rune('a'+i)))
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(payload)
		tw.Close()
		diffIDs = append(diffIDs, digest.FromBytes(tb.Bytes()))
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write(tb.Bytes())
		zw.Close()
		im.layers = append(im.layers, newBlob(ocispec.MediaTypeImageLayerGzip, gz.Bytes()))
	}
	cfg := ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: arch},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
		Config:   ocispec.ImageConfig{Env: []string{fmt.Sprint("SEED=", seed)}},
	}
	cb, _ := json.Marshal(cfg)
	im.config = newBlob(ocispec.MediaTypeImageConfig, cb)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: im.config.desc}
	m.SchemaVersion = 2
	for _, l := range im.layers {
		m.Layers = append(m.Layers, l.desc)
	}
	mb, _ := json.Marshal(m)
	im.manifest = newBlob(ocispec.MediaTypeImageManifest, mb)
	return im
}

// testIndex is a two-platform index (linux/amd64, linux/arm64).
type testIndex struct {
	index  testBlob
	images []testImage
}

func makeIndex(t testing.TB, seed uint64) testIndex {
	t.Helper()
	var ti testIndex
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
	idx.SchemaVersion = 2
	for i, arch := range []string{"amd64", "arm64"} {
		im := makeImageFor(t, seed+uint64(i), 1, 500, arch)
		ti.images = append(ti.images, im)
		d := im.manifest.desc
		d.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		idx.Manifests = append(idx.Manifests, d)
	}
	b, _ := json.Marshal(idx)
	ti.index = newBlob(ocispec.MediaTypeImageIndex, b)
	return ti
}

// writeIndexImage stores the children by digest and tags the index.
func writeIndexImage(t testing.TB, s *Store, ti testIndex, tag string) {
	t.Helper()
	ctx := context.Background()
	for _, im := range ti.images {
		for _, b := range append(im.blobs(), im.manifest) {
			if err := s.WriteBlobBytes(ctx, b.desc, b.data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.WriteBlobBytes(ctx, ti.index.desc, ti.index.data); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, ti.index.desc, tag); err != nil {
		t.Fatal(err)
	}
}

// writeImage stores all blobs of im and tags its manifest.
func writeImage(t testing.TB, s *Store, im testImage, tag string) {
	t.Helper()
	ctx := context.Background()
	for _, b := range im.blobs() {
		if err := s.WriteBlob(ctx, b.desc, bytes.NewReader(b.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WriteBlobBytes(ctx, im.manifest.desc, im.manifest.data); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, im.manifest.desc, tag); err != nil {
		t.Fatal(err)
	}
}

// checkImage reads im back from s under tag and compares every byte.
func checkImage(t testing.TB, s *Store, im testImage, tag string) {
	t.Helper()
	ctx := context.Background()
	desc, err := s.Resolve(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != im.manifest.desc.Digest || desc.Size != im.manifest.desc.Size || desc.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("Resolve(%q) = %+v, want %+v", tag, desc, im.manifest.desc)
	}
	for _, b := range append(im.blobs(), im.manifest) {
		got, err := s.ReadBlob(ctx, b.desc, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, b.data) {
			t.Fatalf("blob %s differs", b.desc.Digest)
		}
	}
}

// tmpFiles lists leftover temporary files anywhere in the layout.
func tmpFiles(t testing.TB, dir string) []string {
	t.Helper()
	var left []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && len(d.Name()) > len(tmpPrefix) && d.Name()[:len(tmpPrefix)] == tmpPrefix {
			left = append(left, p)
		}
		return nil
	})
	return left
}

// needTool returns the path of a peer tool, skipping the test when it is
// missing outside CI and failing it in CI.
func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed; install it to run this interop test", name)
	}
	return p
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}
