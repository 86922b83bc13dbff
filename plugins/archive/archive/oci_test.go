package archive

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/atomicfile"
	"github.com/stevedore-oci/stevedore/core/layer/layertest"
	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/internal/peertest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

func ociDigest(t *testing.T, dir, tag string) digest.Digest {
	t.Helper()
	s, err := layout.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Resolve(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest
}

// fixture writes an OCI layout with tag "t": a single image or an index.
func fixture(t *testing.T, dir string, multi bool) (digest.Digest, []string) {
	t.Helper()
	if multi {
		ix := layertest.NewIndex("arch", "amd64", "arm64")
		if err := layertest.WriteIndex(dir, "t", ix); err != nil {
			t.Fatal(err)
		}
		return ix.Index.Desc.Digest, []string{"--all"}
	}
	img := layertest.NewImage("arch", layertest.Options{Layers: 3})
	if err := layertest.WriteImage(dir, "t", img); err != nil {
		t.Fatal(err)
	}
	return img.Manifest.Desc.Digest, nil
}

// emptyDir fails when dir holds anything.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		var n []string
		for _, e := range ents {
			n = append(n, e.Name())
		}
		t.Fatalf("%s not empty: %v", dir, n)
	}
}

func TestOCIArchiveSkopeoRoundTrip(t *testing.T) {
	for _, multi := range []bool{false, true} {
		t.Run(map[bool]string{false: "single", true: "all"}[multi], func(t *testing.T) {
			tmp := t.TempDir()
			tmpdir := t.TempDir()
			t.Setenv("TMPDIR", tmpdir)
			want, flags := fixture(t, filepath.Join(tmp, "fx"), multi)
			a := filepath.Join(tmp, "a.tar")
			peertest.Skopeo(t, append(append([]string{"copy", "-q"}, flags...), "oci:"+filepath.Join(tmp, "fx")+":t", "oci-archive:"+a+":t")...)

			p := New(nil)
			src := transporttest.OpenEndpoint(t, p, OCIArchive, a, pluginapi.ModeRead).(pluginapi.Source)
			emptyDir(t, tmpdir) // uncompressed: read in place, nothing unpacked
			if tags, err := src.(pluginapi.TagLister).ListTags(context.Background()); err != nil || strings.Join(tags, ",") != "t" {
				t.Fatalf("tags %v %v", tags, err)
			}
			b := filepath.Join(tmp, "out", "b.tar")
			dst := transporttest.OpenEndpoint(t, p, OCIArchive, b, pluginapi.ModeWrite)
			top := transporttest.CopyImage(t, src, "t", dst.(pluginapi.Destination), "v2")
			if top.Digest != want {
				t.Fatalf("resolved %s, want %s", top.Digest, want)
			}
			if _, err := os.Stat(b); !os.IsNotExist(err) {
				t.Fatalf("archive visible before commit: %v", err)
			}
			transporttest.CommitClose(t, dst)
			src.(pluginapi.Endpoint).Close(context.Background())
			emptyDir(t, tmpdir)
			if ents, _ := os.ReadDir(filepath.Dir(b)); len(ents) != 1 {
				t.Fatalf("staging left behind: %v", ents)
			}
			c := filepath.Join(tmp, "c")
			peertest.Skopeo(t, append(append([]string{"copy", "-q"}, flags...), "oci-archive:"+b+":v2", "oci:"+c+":x")...)
			if got := ociDigest(t, c, "x"); got != want {
				t.Fatalf("skopeo read back %s, want %s", got, want)
			}
		})
	}
}

func TestOCIArchiveCompressed(t *testing.T) {
	tmp := t.TempDir()
	tmpdir := t.TempDir()
	t.Setenv("TMPDIR", tmpdir)
	img := layertest.NewImage("gz", layertest.Options{})
	a := filepath.Join(tmp, "a.tar")
	writeOCIArchive(t, a, img, "t")
	raw, _ := os.ReadFile(a)
	gz := filepath.Join(tmp, "a.tar.gz")
	os.WriteFile(gz, layertest.Gzip(raw), 0o644)

	src := transporttest.OpenEndpoint(t, New(nil), OCIArchive, gz, pluginapi.ModeRead).(*ociSource)
	d, err := src.Resolve(context.Background(), "")
	if err != nil || d.Digest != img.Manifest.Desc.Digest {
		t.Fatalf("resolve %v %v", d, err)
	}
	l := img.Layers[1]
	if got := transporttest.ReadBlob(t, src, l.Desc, 7); !bytes.Equal(got, l.Data[7:]) {
		t.Fatal("blob differs")
	}
	// Decompressed into $TMPDIR (not memory), into a file without a name.
	emptyDir(t, tmpdir)
	if n := openDeletedUnder(t, tmpdir); n != 1 {
		t.Fatalf("%d unnamed files open in %s, want the decompressed copy", n, tmpdir)
	}
	src.Close(context.Background())
	if n := openDeletedUnder(t, tmpdir); n != 0 {
		t.Fatalf("the decompressed copy is still open after Close")
	}
}

// openDeletedUnder counts this process's open files that were in dir and
// have no name now.
func openDeletedUnder(t *testing.T, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if err == nil && strings.HasPrefix(target, dir+"/") && strings.HasSuffix(target, " (deleted)") {
			n++
		}
	}
	return n
}

// writeOCIArchive writes img with our destination.
func writeOCIArchive(t *testing.T, path string, img layertest.Image, ref string) {
	t.Helper()
	ctx := context.Background()
	dst := transporttest.OpenEndpoint(t, New(nil), OCIArchive, path, pluginapi.ModeWrite).(*ociDest)
	for _, b := range img.Blobs() {
		if err := dst.PutBlob(ctx, b.Desc, bytes.NewReader(b.Data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.PutManifest(ctx, img.Manifest.Desc, img.Manifest.Data, ref); err != nil {
		t.Fatal(err)
	}
	transporttest.CommitClose(t, dst)
}

func TestOCIArchiveFailuresLeaveNothing(t *testing.T) {
	tmp := t.TempDir()
	ctx := context.Background()
	img := layertest.NewImage("fail", layertest.Options{})
	path := filepath.Join(tmp, "x.tar")

	dst := transporttest.OpenEndpoint(t, New(nil), OCIArchive, path, pluginapi.ModeWrite).(*ociDest)
	good, bad := img.Layers[0], img.Layers[1]
	if err := dst.PutBlob(ctx, bad.Desc, bytes.NewReader(append([]byte{'!'}, bad.Data[1:]...))); !errors.Is(err, core.ErrDigestMismatch) {
		t.Fatalf("corrupt blob: %v", err)
	}
	if err := dst.PutBlob(ctx, bad.Desc, bytes.NewReader(append(bad.Data, 'x'))); !errors.Is(err, core.ErrSizeMismatch) {
		t.Fatalf("long blob: %v", err)
	}
	if ok, _ := dst.HasBlob(ctx, bad.Desc); ok {
		t.Fatal("refused blob counts as present")
	}
	if err := dst.PutBlob(ctx, good.Desc, bytes.NewReader(good.Data)); err != nil {
		t.Fatal(err)
	}
	dst.Close(ctx)
	emptyDir(t, tmp)

	// After refused blobs, the archive written is still whole and valid.
	dst = transporttest.OpenEndpoint(t, New(nil), OCIArchive, path, pluginapi.ModeWrite).(*ociDest)
	if err := dst.PutBlob(ctx, bad.Desc, bytes.NewReader(bad.Data[:10])); err == nil {
		t.Fatal("short blob accepted")
	}
	for _, b := range img.Blobs() {
		if err := dst.PutBlob(ctx, b.Desc, bytes.NewReader(b.Data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.PutManifest(ctx, img.Manifest.Desc, img.Manifest.Data, "t"); err != nil {
		t.Fatal(err)
	}
	transporttest.CommitClose(t, dst)
	out := filepath.Join(tmp, "out")
	peertest.Skopeo(t, "copy", "-q", "oci-archive:"+path+":t", "oci:"+out+":t")
	if got := ociDigest(t, out, "t"); got != img.Manifest.Desc.Digest {
		t.Fatalf("got %s", got)
	}
	// tar itself must agree that the archive is well formed.
	peertest.Need(t, "tar")
	list := peertest.Run(t, "tar", "-tf", path)
	if strings.Count(list, "blobs/sha256/"+bad.Desc.Digest.Encoded()) != 1 {
		t.Fatalf("refused blob left a member:\n%s", list)
	}
}

func TestOCIArchiveResolve(t *testing.T) {
	tmp := t.TempDir()
	ctx := context.Background()
	a, b := layertest.NewImage("r1", layertest.Options{}), layertest.NewImage("r2", layertest.Options{Docker: true})
	path := filepath.Join(tmp, "two.tar")
	dst := transporttest.OpenEndpoint(t, New(nil), OCIArchive, path, pluginapi.ModeWrite).(*ociDest)
	for _, img := range []layertest.Image{a, b} {
		for _, bl := range img.Blobs() {
			if err := dst.PutBlob(ctx, bl.Desc, bytes.NewReader(bl.Data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	dst.PutManifest(ctx, a.Manifest.Desc, a.Manifest.Data, "one")
	dst.PutManifest(ctx, b.Manifest.Desc, b.Manifest.Data, b.Manifest.Desc.Digest.String())
	transporttest.CommitClose(t, dst)

	src := transporttest.OpenEndpoint(t, New(nil), OCIArchive, path, pluginapi.ModeRead).(*ociSource)
	defer src.Close(ctx)
	if d, err := src.Resolve(ctx, "one"); err != nil || d.Digest != a.Manifest.Desc.Digest {
		t.Fatalf("one: %v %v", d, err)
	}
	if d, err := src.Resolve(ctx, b.Manifest.Desc.Digest.String()); err != nil || d.MediaType != b.Manifest.Desc.MediaType {
		t.Fatalf("digest: %v %v", d, err)
	}
	if _, err := src.Resolve(ctx, ""); !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "one") {
		t.Fatalf("ambiguous default: %v", err)
	}
	if _, err := src.Resolve(ctx, "nope"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := src.GetBlob(ctx, ocispec.Descriptor{Digest: digest.FromString("x")}, 0); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
}

func TestOCIArchiveRefusesUnsafeTar(t *testing.T) {
	tmp := t.TempDir()
	path := filepath.Join(tmp, "evil.tar")
	peertest.Need(t, "tar")
	os.MkdirAll(filepath.Join(tmp, "x"), 0o755)
	os.WriteFile(filepath.Join(tmp, "x", "index.json"), []byte("{}"), 0o644)
	cmd := exec.Command("tar", "-cf", path, "-P", "--transform", "s,^,../,", "-C", filepath.Join(tmp, "x"), "index.json")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	_, err := New(nil).Open(context.Background(), pluginapi.OpenRequest{Transport: OCIArchive, Location: path, Mode: pluginapi.ModeRead})
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "../index.json") {
		t.Fatalf("error %v", err)
	}
}

// A writer killed outright (SIGKILL) leaves its staging directory beside
// the archive: the next writer of that archive removes it, and leaves one
// a live writer holds.
func TestOCIArchiveSweepsDeadWritersStaging(t *testing.T) {
	tmp := t.TempDir()
	ctx := context.Background()
	path := filepath.Join(tmp, "x.tar")
	dead := filepath.Join(tmp, ".x.tar.stevedore-tmp-123")
	if err := os.MkdirAll(dead, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, "archive.tar"), make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	live, err := atomicfile.MkdirStage(tmp, ".x.tar.stevedore-tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Release()
	old := time.Now().Add(-2 * time.Hour)
	for _, d := range []string{dead, live.Path} {
		if err := os.Chtimes(d, old, old); err != nil {
			t.Fatal(err)
		}
	}
	dst := transporttest.OpenEndpoint(t, New(nil), OCIArchive, path, pluginapi.ModeWrite).(*ociDest)
	dst.Close(ctx)
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Fatalf("a dead writer's staging directory is still there: %v", err)
	}
	if _, err := os.Stat(live.Path); err != nil {
		t.Fatalf("a live writer's staging directory: %v", err)
	}
}

// A file in the way of an archive is refused, the archive named once: the
// cause repeated it ("archive P: exists and ... (archive P: tar entry 1:").
func TestArchiveInTheWayNamedOnce(t *testing.T) {
	for _, transport := range []string{OCIArchive, DockerArchive} {
		path := filepath.Join(t.TempDir(), "notes.txt")
		if err := os.WriteFile(path, []byte("hi\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := New(nil).Open(context.Background(), pluginapi.OpenRequest{Transport: transport, Location: path, Mode: pluginapi.ModeWrite})
		if !errors.Is(err, core.ErrExists) || strings.Count(err.Error(), path) != 1 {
			t.Errorf("%s: %v, want exists naming %s once", transport, err, path)
		}
		if b, _ := os.ReadFile(path); string(b) != "hi\n" {
			t.Errorf("%s: the file was changed: %q", transport, b)
		}
	}
}
