package host_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/imagegen"
)

// A blob a layout refuses, linked from another layout, is named once: the
// error said "put blob D from P: oci layout L: blob D from P: digest
// mismatch ...".
func TestLinkedBlobErrorNamesBlobOnce(t *testing.T) {
	src, _, img := sourceLayout(t, imagegen.Spec{Seed: 11, Layers: []imagegen.Layer{{Size: 64 << 10}}})
	layer := filepath.Join(src, "blobs", "sha256", img.Layers[0].Digest.Encoded())
	b, err := os.ReadFile(layer)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	os.Remove(layer) // it may be hard-linked
	if err := os.WriteFile(layer, b, 0o644); err != nil {
		t.Fatal(err)
	}
	h := newSyncHost(t)
	_, err = h.Copy(context.Background(), "oci:"+src+":v1", "oci:"+filepath.Join(t.TempDir(), "dst")+":v1", host.CopyOptions{})
	if err == nil {
		t.Fatal("a corrupt blob was copied")
	}
	if n := strings.Count(err.Error(), img.Layers[0].Digest.String()+" from "+layer); n != 1 {
		t.Fatalf("the blob and its file are named %d times: %v", n, err)
	}
}

// A platform named twice is one platform: its image alone was copied as a
// new index of one entry, where naming it once copies the image.
func TestRepeatedPlatformIsOne(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "src")
	s, err := layout.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	amd64 := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	_, imgs, err := imagegen.WriteIndex(ctx, s, "multi", imagegen.Spec{Seed: 5, Layers: []imagegen.Layer{{Size: 1 << 10}}}, []ocispec.Platform{amd64, {OS: "linux", Architecture: "arm64"}})
	if err != nil {
		t.Fatal(err)
	}
	h := newSyncHost(t)
	res, err := h.Copy(ctx, "oci:"+dir+":multi", "oci:"+filepath.Join(t.TempDir(), "dst")+":v1", host.CopyOptions{Platforms: []ocispec.Platform{amd64, amd64}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Descriptor.Digest != imgs[0].Manifest.Digest {
		t.Fatalf("copied %s (%s), want the amd64 image %s", res.Descriptor.Digest, res.Descriptor.MediaType, imgs[0].Manifest.Digest)
	}
}
