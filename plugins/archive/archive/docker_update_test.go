package archive

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/layer/layertest"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

// putImage writes img's blobs and manifest under ref through dst.
func putImage(t *testing.T, dst pluginapi.Destination, img layertest.Image, ref string) {
	t.Helper()
	ctx := context.Background()
	for _, b := range img.Blobs() {
		if err := dst.PutBlob(ctx, b.Desc, bytes.NewReader(b.Data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.PutManifest(ctx, img.Manifest.Desc, img.Manifest.Data, ref); err != nil {
		t.Fatal(err)
	}
}

// checkImage checks that ref selects img in src, with every layer readable.
func checkImage(t *testing.T, src pluginapi.Source, ref string, img layertest.Image) {
	t.Helper()
	_, raw := getManifest(t, src, ref)
	m, err := manifest.Parse(raw, "")
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.Digest != img.Config.Desc.Digest {
		t.Fatalf("%s selects config %s, want %s", ref, m.Config.Digest, img.Config.Desc.Digest)
	}
	for i, l := range m.Layers {
		if got := digest.FromBytes(transporttest.ReadBlob(t, src, l, 0)); got != img.DiffIDs[i] {
			t.Fatalf("%s: layer %d holds %s, want %s", ref, i, got, img.DiffIDs[i])
		}
	}
}

// TestDockerArchiveAddsToExisting: writing to an existing docker-archive
// keeps its images (a pre-25 one here, members not named by digest), a tag
// written again moves to the new image, and a file that is not a
// docker-archive is refused and left as it was.
func TestDockerArchiveAddsToExisting(t *testing.T) {
	tmp := t.TempDir()
	ctx := context.Background()
	a := layertest.NewImage("old-a", layertest.Options{})
	b := layertest.NewImage("old-b", layertest.Options{Layers: 2})
	c := layertest.NewImage("new-c", layertest.Options{})
	d := layertest.NewImage("new-d", layertest.Options{Docker: true})
	path := filepath.Join(tmp, "x.tar")
	if err := os.WriteFile(path, legacyArchive(t, a, b), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := transporttest.OpenEndpoint(t, New(nil), DockerArchive, path, pluginapi.ModeWrite).(*dockerDest)
	putImage(t, dst, c, "second:2") // was b's
	putImage(t, dst, d, "third:3")
	putImage(t, dst, c, "third:3") // moves from d, written in this session
	transporttest.CommitClose(t, dst)

	src := transporttest.OpenEndpoint(t, New(nil), DockerArchive, path, pluginapi.ModeRead).(*dockerSource)
	defer src.Close(ctx)
	if len(src.items) != 4 {
		t.Fatalf("manifest.json holds %d images, want 4: %+v", len(src.items), src.items)
	}
	for _, c := range []struct {
		ref string
		img layertest.Image
	}{{"first:1", a}, {"@0", a}, {"@1", b}, {"second:2", c}, {"third:3", c}, {"@3", d}} {
		checkImage(t, src, c.ref, c.img)
	}
	if tags, _ := src.ListTags(ctx); strings.Join(tags, ",") != "first:1,second:2,third:3" {
		t.Fatalf("tags %v", tags)
	}
	if len(src.items[1].RepoTags) != 0 || len(src.items[3].RepoTags) != 0 {
		t.Fatalf("tags were not moved: %+v", src.items)
	}

	notArchive := filepath.Join(tmp, "notes.txt")
	os.WriteFile(notArchive, []byte("keep me"), 0o644)
	_, err := New(nil).Open(ctx, pluginapi.OpenRequest{Transport: DockerArchive, Location: notArchive, Mode: pluginapi.ModeWrite})
	if !errors.Is(err, core.ErrExists) {
		t.Fatalf("writing over a file that is not an archive: %v, want ErrExists", err)
	}
	if b, _ := os.ReadFile(notArchive); string(b) != "keep me" {
		t.Fatal("a file that is not an archive was changed")
	}
	empty := filepath.Join(tmp, "empty.tar")
	os.WriteFile(empty, nil, 0o644)
	dst = transporttest.OpenEndpoint(t, New(nil), DockerArchive, empty, pluginapi.ModeWrite).(*dockerDest)
	putImage(t, dst, a, "a:1")
	transporttest.CommitClose(t, dst)
	src2 := transporttest.OpenEndpoint(t, New(nil), DockerArchive, empty, pluginapi.ModeRead).(*dockerSource)
	defer src2.Close(ctx)
	checkImage(t, src2, "a:1", a)
}

// TestDockerArchiveFreshEndpoint: an endpoint that has not resolved an
// image by name serves it by manifest digest, including its manifest and
// blobs stored under names that are not digests; an unknown digest is
// ErrNotFound.
func TestDockerArchiveFreshEndpoint(t *testing.T) {
	ctx := context.Background()
	a := layertest.NewImage("fresh-a", layertest.Options{})
	b := layertest.NewImage("fresh-b", layertest.Options{})
	path := filepath.Join(t.TempDir(), "legacy.tar")
	if err := os.WriteFile(path, legacyArchive(t, a, b), 0o644); err != nil {
		t.Fatal(err)
	}
	open := func() pluginapi.Source {
		src := transporttest.OpenEndpoint(t, New(nil), DockerArchive, path, pluginapi.ModeRead).(*dockerSource)
		t.Cleanup(func() { src.Close(ctx) })
		return src
	}
	want, raw := getManifest(t, open(), "second:2")
	got, err := open().Resolve(ctx, want.Digest.String())
	if err != nil || got.Digest != want.Digest || got.Size != want.Size || got.MediaType != want.MediaType {
		t.Fatalf("Resolve(%s) on a fresh endpoint = %+v, %v; want %+v", want.Digest, got, err, want)
	}
	if m, err := open().GetManifest(ctx, want); err != nil || !bytes.Equal(m, raw) {
		t.Fatalf("GetManifest on a fresh endpoint: %v", err)
	}
	m, _ := manifest.Parse(raw, "")
	fresh := open()
	for _, l := range m.Children() {
		if got := digest.FromBytes(transporttest.ReadBlob(t, fresh, l, 0)); got != l.Digest {
			t.Fatalf("GetBlob %s on a fresh endpoint: content %s", l.Digest, got)
		}
	}
	_, err = open().Resolve(ctx, digest.FromString("no such manifest").String())
	if !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("Resolve of an unknown digest: %v, want ErrNotFound", err)
	}
}
