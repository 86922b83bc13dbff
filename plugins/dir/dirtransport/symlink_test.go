package dirtransport

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stevedore-oci/stevedore/core/layer/layertest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

// TestDestinationWritesThroughSymlink: dir:current where current ->
// releases/v3 writes releases/v3, as skopeo does, and the link stays. The
// swap replaced the link by a directory, leaving releases/v3 with the old
// image; through a dangling link the commit failed ("open current: no such
// file or directory") after every blob was written.
func TestDestinationWritesThroughSymlink(t *testing.T) {
	tmp := t.TempDir()
	ctx := context.Background()
	write := func(loc string, img layertest.Image) { t.Helper(); writeImage(t, loc, img, "") }
	old := layertest.NewImage("link-old", layertest.Options{})
	img := layertest.NewImage("link-new", layertest.Options{})
	v3 := filepath.Join(tmp, "releases", "v3")
	write(v3, old)
	for _, c := range []struct{ link, target string }{
		{"current", v3},
		{"next", filepath.Join(tmp, "releases", "v4")}, // dangling
	} {
		link := filepath.Join(tmp, c.link)
		if err := os.Symlink(c.target, link); err != nil {
			t.Fatal(err)
		}
		write(link, img)
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("%s is no longer a symlink: %v %v", c.link, fi.Mode(), err)
		}
		src := transporttest.OpenEndpoint(t, New(nil), Transport, c.target, pluginapi.ModeRead).(*source)
		top, err := src.Resolve(ctx, "")
		if err != nil || top.Digest != img.Manifest.Desc.Digest {
			t.Fatalf("%s holds %s (%v), want %s", c.target, top.Digest, err, img.Manifest.Desc.Digest)
		}
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 3 {
		t.Fatalf("%s holds %d entries, want releases and the two links", tmp, len(ents))
	}
}

// A destination given up (Close without Commit) removes the directories
// it made above itself, when empty: a failed copy to dir:new/sub/img left
// new/sub behind.
func TestDestinationGivenUpRemovesTheParentsItMade(t *testing.T) {
	tmp := t.TempDir()
	keep := filepath.Join(tmp, "keep")
	if err := os.MkdirAll(keep, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := transporttest.OpenEndpoint(t, New(nil), Transport, filepath.Join(tmp, "new", "sub", "img"), pluginapi.ModeWrite)
	dst2 := transporttest.OpenEndpoint(t, New(nil), Transport, filepath.Join(keep, "img"), pluginapi.ModeWrite)
	if err := dst.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := dst2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "new")); !os.IsNotExist(err) {
		t.Fatalf("the directories made for a given-up destination are still there: %v", err)
	}
	if entries, err := os.ReadDir(keep); err != nil || len(entries) != 0 {
		t.Fatalf("a directory that was there: %v, %v", entries, err)
	}
}
