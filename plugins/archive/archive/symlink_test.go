package archive

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core/layer/layertest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

// TestArchiveWritesThroughSymlink: an archive path that is a symlink
// (current.tar -> releases/v3.tar) is written through, as skopeo, docker
// save -o and tar -f do. The new archive was renamed over the link: the
// link became a plain file and its target kept the old archive.
func TestArchiveWritesThroughSymlink(t *testing.T) {
	tmp := t.TempDir()
	ctx := context.Background()
	a := layertest.NewImage("link-a", layertest.Options{})
	b := layertest.NewImage("link-b", layertest.Options{})
	raw := legacyArchive(t, a, b)
	srcPath := filepath.Join(tmp, "src.tar")
	os.WriteFile(srcPath, raw, 0o644)
	os.Mkdir(filepath.Join(tmp, "releases"), 0o755)
	target := filepath.Join(tmp, "releases", "v3.tar")
	os.WriteFile(target, raw, 0o644)
	link := filepath.Join(tmp, "current.tar")
	if err := os.Symlink("releases/v3.tar", link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(tmp, "next.tar")
	if err := os.Symlink(filepath.Join("releases", "v4.tar"), dangling); err != nil {
		t.Fatal(err)
	}
	p := New(nil)
	for _, c := range []struct{ link, target, want string }{
		{link, target, "first:1,second:2,third:3"},
		{dangling, filepath.Join(tmp, "releases", "v4.tar"), "third:3"},
	} {
		src := transporttest.OpenEndpoint(t, p, DockerArchive, srcPath, pluginapi.ModeRead).(pluginapi.Source)
		dst := transporttest.OpenEndpoint(t, p, DockerArchive, c.link, pluginapi.ModeWrite)
		transporttest.CopyImage(t, src, "second:2", dst.(pluginapi.Destination), "third:3")
		transporttest.CommitClose(t, dst)
		src.(pluginapi.Endpoint).Close(ctx)
		if fi, err := os.Lstat(c.link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("%s is no longer a symlink: %v %v", c.link, fi.Mode(), err)
		}
		got := transporttest.OpenEndpoint(t, p, DockerArchive, c.target, pluginapi.ModeRead).(*dockerSource)
		tags, err := got.ListTags(ctx)
		got.Close(ctx)
		if err != nil || strings.Join(tags, ",") != c.want {
			t.Fatalf("%s holds %v (%v), want %s", c.target, tags, err, c.want)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(tmp, "releases")); len(ents) != 2 {
		t.Fatalf("releases holds %d entries, want the two archives", len(ents))
	}
}

// TestOCIArchiveWritesOverEmptyFile: an empty file (mktemp's) is written
// over, as docker-archive: does and skopeo does; oci-archive: refused it as
// "exists and is not a readable oci-archive".
func TestOCIArchiveWritesOverEmptyFile(t *testing.T) {
	tmp := t.TempDir()
	ctx := context.Background()
	a := layertest.NewImage("empty-a", layertest.Options{})
	srcPath := filepath.Join(tmp, "src.tar")
	os.WriteFile(srcPath, legacyArchive(t, a, layertest.NewImage("empty-b", layertest.Options{})), 0o644)
	empty := filepath.Join(tmp, "tmp.XXXXXX")
	os.WriteFile(empty, nil, 0o600)
	p := New(nil)
	src := transporttest.OpenEndpoint(t, p, DockerArchive, srcPath, pluginapi.ModeRead).(pluginapi.Source)
	defer src.(pluginapi.Endpoint).Close(ctx)
	dst := transporttest.OpenEndpoint(t, p, OCIArchive, empty, pluginapi.ModeWrite)
	transporttest.CopyImage(t, src, "first:1", dst.(pluginapi.Destination), "v1")
	transporttest.CommitClose(t, dst)
	got := transporttest.OpenEndpoint(t, p, OCIArchive, empty, pluginapi.ModeRead).(pluginapi.Source)
	defer got.(pluginapi.Endpoint).Close(ctx)
	if tags, err := got.(pluginapi.TagLister).ListTags(ctx); err != nil || strings.Join(tags, ",") != "v1" {
		t.Fatalf("tags %v %v", tags, err)
	}
}

// An archive given up (Close without Commit) removes the directories it
// made above itself, when empty: a failed copy to oci-archive:new/sub/x.tar
// left new/sub behind.
func TestArchiveGivenUpRemovesTheParentsItMade(t *testing.T) {
	for _, transport := range []string{OCIArchive, DockerArchive} {
		tmp := t.TempDir()
		dst := transporttest.OpenEndpoint(t, New(nil), transport, filepath.Join(tmp, "new", "sub", "x.tar"), pluginapi.ModeWrite)
		if err := dst.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(tmp, "new")); !os.IsNotExist(err) {
			t.Fatalf("%s: the directories made for a given-up archive are still there: %v", transport, err)
		}
		if _, err := os.Stat(tmp); err != nil {
			t.Fatalf("%s: a directory that was there was removed: %v", transport, err)
		}
	}
}
