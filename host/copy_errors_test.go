package host_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/imagegen"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/plugins/oci-layout/ocilayout"
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

// fullDisk is a destination whose every blob write fails as an archive's
// does, naming the blob.
type fullDisk struct{}

func (fullDisk) Transports() []string { return []string{"full"} }
func (fullDisk) Open(ctx context.Context, req pluginapi.OpenRequest) (pluginapi.Endpoint, error) {
	return fullDiskEndpoint{}, nil
}

type fullDiskEndpoint struct{}

func (fullDiskEndpoint) Close(context.Context) error { return nil }
func (fullDiskEndpoint) HasBlob(context.Context, ocispec.Descriptor) (bool, error) {
	return false, nil
}
func (fullDiskEndpoint) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	return fmt.Errorf("archive /x.tar: blob %s: write: no space left on device", desc.Digest)
}
func (fullDiskEndpoint) PutManifest(context.Context, ocispec.Descriptor, []byte, string) error {
	return nil
}

// A blob streamed to a destination that names it in its error is named
// once: "put blob D: archive A: blob D: no space left on device".
func TestStreamedBlobErrorNamesBlobOnce(t *testing.T) {
	src, _, img := sourceLayout(t, imagegen.Spec{Seed: 12, Layers: []imagegen.Layer{{Size: 4 << 10}}})
	h, err := host.New(host.Options{SearchPath: []string{t.TempDir()}, InProcess: []pluginapi.Plugin{ocilayout.New(), fullDisk{}}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	_, err = h.Copy(context.Background(), "oci:"+src+":v1", "full:/x.tar:v1", host.CopyOptions{Jobs: 1})
	if err == nil {
		t.Fatal("copy to a full disk succeeded")
	}
	for _, d := range append([]ocispec.Descriptor{img.Config}, img.Layers...) {
		if n := strings.Count(err.Error(), d.Digest.String()); n > 1 {
			t.Fatalf("blob %s named %d times: %v", d.Digest, n, err)
		}
	}
}

// inspect of an index lacking the platform asked says what it has, as copy
// does; it said only "has no image for linux/s390x".
func TestInspectMissingPlatformSaysWhatIsThere(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "src")
	s, err := layout.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := imagegen.WriteIndex(ctx, s, "multi", imagegen.Spec{Seed: 6, Layers: []imagegen.Layer{{Size: 1 << 10}}}, []ocispec.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}); err != nil {
		t.Fatal(err)
	}
	h := newSyncHost(t)
	_, err = h.Inspect(ctx, "oci:"+dir+":multi", host.InspectOptions{Platform: &ocispec.Platform{OS: "linux", Architecture: "s390x"}})
	if err == nil || !strings.Contains(err.Error(), "it has linux/amd64, linux/arm64") {
		t.Fatalf("inspect --platform linux/s390x: %v", err)
	}
}
