package ziplayout

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

// The conformance kit, in process. main_test.go runs it again against the
// built plugin binary over gRPC.
func TestConformance(t *testing.T) {
	transporttest.Run(t, transporttest.Harness{
		Plugin:        New(),
		Transport:     Transport,
		NewLocation:   func(t *testing.T) string { return filepath.Join(t.TempDir(), "images.zip") },
		WriteThenRead: true, // written at Commit, like any archive
	})
}

func open(t *testing.T, path string, mode pluginapi.Mode) pluginapi.Endpoint {
	t.Helper()
	ep, err := New().Open(context.Background(), pluginapi.OpenRequest{Transport: Transport, Location: path, Mode: mode})
	if err != nil {
		t.Fatalf("open %s (%s): %v", path, mode, err)
	}
	return ep
}

// write stores img under tag in a new or existing archive and commits.
func write(t *testing.T, path string, img transporttest.Image, tag string) {
	t.Helper()
	ctx := context.Background()
	ep := open(t, path, pluginapi.ModeWrite)
	d := ep.(pluginapi.Destination)
	for _, b := range img.Blobs() {
		if err := d.PutBlob(ctx, b.Descriptor, bytes.NewReader(b.Data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.PutManifest(ctx, img.Manifest.Descriptor, img.Manifest.Data, tag); err != nil {
		t.Fatal(err)
	}
	if err := ep.(pluginapi.Committer).Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ep.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// The archive is a plain zip of an image layout, blobs stored (not
// deflated) at byte offsets GetBlob reads directly.
func TestArchiveIsStoredLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.zip")
	img := transporttest.RandomImage(1, 2, 200<<10)
	write(t, path, img, "v1")

	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	names := map[string]*zip.File{}
	for _, f := range zr.File {
		names[f.Name] = f
		if f.Method != zip.Store {
			t.Errorf("%s is compressed (method %d); blobs must be stored for random access", f.Name, f.Method)
		}
	}
	for _, want := range []string{"oci-layout", "index.json", blobName(img.Manifest.Descriptor.Digest), blobName(img.Config.Descriptor.Digest)} {
		if names[want] == nil {
			t.Fatalf("archive lacks %s (has %v)", want, keys(names))
		}
	}
	// The layer's bytes sit at DataOffset in the file, as GetBlob assumes.
	layer := img.Layers[1]
	off, err := names[blobName(layer.Descriptor.Digest)].DataOffset()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw[off:off+layer.Descriptor.Size], layer.Data) {
		t.Fatal("layer bytes are not stored verbatim at their data offset")
	}

	src := open(t, path, pluginapi.ModeRead).(pluginapi.Source)
	rc, err := src.GetBlob(context.Background(), layer.Descriptor, 12345)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, layer.Data[12345:]) {
		t.Fatalf("GetBlob from offset 12345: %d bytes, %v", len(got), err)
	}
	if _, err := src.GetBlob(context.Background(), layer.Descriptor, layer.Descriptor.Size+1); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("GetBlob past the end: %v, want ErrInvalid", err)
	}
}

func keys(m map[string]*zip.File) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Writing to an existing archive keeps its images; the same content makes
// the same bytes.
func TestAppendAndReproducible(t *testing.T) {
	dir := t.TempDir()
	a, b := transporttest.RandomImage(2, 1, 1000), transporttest.RandomImage(3, 1, 1000)
	one, two := filepath.Join(dir, "one.zip"), filepath.Join(dir, "two.zip")
	write(t, one, a, "a")
	write(t, one, b, "b")
	write(t, two, a, "a")
	write(t, two, b, "b")
	src := open(t, one, pluginapi.ModeRead)
	defer src.Close(context.Background())
	tags, err := src.(pluginapi.TagLister).ListTags(context.Background())
	if err != nil || len(tags) != 2 || tags[0] != "a" || tags[1] != "b" {
		t.Fatalf("tags after two writes: %v, %v", tags, err)
	}
	for tag, img := range map[string]transporttest.Image{"a": a, "b": b} {
		d, err := src.(pluginapi.Source).Resolve(context.Background(), tag)
		if err != nil || d.Digest != img.Manifest.Descriptor.Digest {
			t.Fatalf("Resolve(%s) = %v, %v", tag, d.Digest, err)
		}
	}
	x, _ := os.ReadFile(one)
	y, _ := os.ReadFile(two)
	if !bytes.Equal(x, y) {
		t.Fatal("the same writes made different archives")
	}
}

// A write that is not committed leaves an existing archive byte-for-byte as
// it was and no staging files behind.
func TestCloseWithoutCommitKeepsArchive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.zip")
	write(t, path, transporttest.RandomImage(4, 1, 1000), "v1")
	before, _ := os.ReadFile(path)

	ctx := context.Background()
	ep := open(t, path, pluginapi.ModeWrite)
	img := transporttest.RandomImage(5, 1, 1000)
	for _, b := range img.Blobs() {
		if err := ep.(pluginapi.Destination).PutBlob(ctx, b.Descriptor, bytes.NewReader(b.Data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ep.(pluginapi.Deleter).Delete(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	if err := ep.Close(ctx); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("an uncommitted write changed the archive")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("left behind: %v", names)
	}
}

// A digest mismatch is refused and stages nothing.
func TestPutBlobVerifies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.zip")
	ep := open(t, path, pluginapi.ModeWrite)
	defer ep.Close(context.Background())
	good := transporttest.NewBlob(ocispec.MediaTypeImageLayer, []byte("good content"))
	err := ep.(pluginapi.Destination).PutBlob(context.Background(), good.Descriptor, bytes.NewReader([]byte("evil content")))
	if !errors.Is(err, core.ErrDigestMismatch) {
		t.Fatalf("PutBlob of wrong bytes: %v, want ErrDigestMismatch", err)
	}
	if ok, _ := ep.(pluginapi.Destination).HasBlob(context.Background(), good.Descriptor); ok {
		t.Fatal("refused blob is visible")
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notZip := filepath.Join(dir, "not.zip")
	os.WriteFile(notZip, []byte("hello"), 0o644)
	for _, tt := range []struct {
		path string
		mode pluginapi.Mode
		want error
	}{
		{filepath.Join(dir, "missing.zip"), pluginapi.ModeRead, core.ErrNotFound},
		{notZip, pluginapi.ModeRead, core.ErrInvalid},
		{notZip, pluginapi.ModeWrite, core.ErrInvalid},
	} {
		_, err := New().Open(context.Background(), pluginapi.OpenRequest{Transport: Transport, Location: tt.path, Mode: tt.mode})
		if !errors.Is(err, tt.want) {
			t.Errorf("Open %s (%s): %v, want %v", tt.path, tt.mode, err, tt.want)
		}
	}
}
