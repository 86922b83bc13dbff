package dirtransport

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
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

func keys(m map[string]string) string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	sort.Strings(k)
	return strings.Join(k, ",")
}

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

// TestSkopeoRoundTrip: skopeo dir: -> us -> skopeo gives identical files
// and digests, single image and multi-arch --all.
// writeImage writes img to a dir: destination at loc and commits it.
func writeImage(t *testing.T, loc string, img layertest.Image, tag string) {
	t.Helper()
	ctx := context.Background()
	dst := transporttest.OpenEndpoint(t, New(nil), Transport, loc, pluginapi.ModeWrite).(*dest)
	for _, b := range img.Blobs() {
		if err := dst.PutBlob(ctx, b.Desc, bytes.NewReader(b.Data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.PutManifest(ctx, img.Manifest.Desc, img.Manifest.Data, tag); err != nil {
		t.Fatal(err)
	}
	transporttest.CommitClose(t, dst)
}

func TestSkopeoRoundTrip(t *testing.T) {
	for _, multi := range []bool{false, true} {
		t.Run(map[bool]string{false: "single", true: "all"}[multi], func(t *testing.T) {
			tmp := t.TempDir()
			fx := filepath.Join(tmp, "fx")
			var want digest.Digest
			args := []string{"copy", "-q"}
			if multi {
				ix := layertest.NewIndex("dir", "amd64", "arm64")
				if err := layertest.WriteIndex(fx, "t", ix); err != nil {
					t.Fatal(err)
				}
				want = ix.Index.Desc.Digest
				args = append(args, "--all")
			} else {
				img := layertest.NewImage("dir", layertest.Options{Layers: 3})
				if err := layertest.WriteImage(fx, "t", img); err != nil {
					t.Fatal(err)
				}
				want = img.Manifest.Desc.Digest
			}
			a := filepath.Join(tmp, "a")
			peertest.Skopeo(t, append(args, "oci:"+fx+":t", "dir:"+a)...)

			p := New(nil)
			src := transporttest.OpenEndpoint(t, p, Transport, a, pluginapi.ModeRead).(pluginapi.Source)
			b := filepath.Join(tmp, "b")
			dst := transporttest.OpenEndpoint(t, p, Transport, b, pluginapi.ModeWrite)
			top := transporttest.CopyImage(t, src, "", dst.(pluginapi.Destination), "")
			if top.Digest != want {
				t.Fatalf("resolved %s, want %s", top.Digest, want)
			}
			transporttest.CommitClose(t, dst)
			src.(pluginapi.Endpoint).Close(context.Background())

			fa, fb := peertest.Files(t, a, ""), peertest.Files(t, b, "")
			if keys(fa) != keys(fb) {
				t.Fatalf("files differ:\nskopeo: %s\nours:   %s", keys(fa), keys(fb))
			}
			for n := range fa {
				if fa[n] != fb[n] {
					t.Fatalf("file %s differs", n)
				}
			}
			c := filepath.Join(tmp, "c")
			peertest.Skopeo(t, append(args, "dir:"+b, "oci:"+c+":t")...)
			if got := ociDigest(t, c, "t"); got != want {
				t.Fatalf("skopeo read back %s, want %s", got, want)
			}
		})
	}
}

// TestWrittenBySkopeoReadable: what we write from scratch, skopeo reads.
func TestWrittenReadBySkopeo(t *testing.T) {
	tmp := t.TempDir()
	ix := layertest.NewIndex("w", "amd64", "arm64", "ppc64le")
	fx := filepath.Join(tmp, "fx")
	if err := layertest.WriteIndex(fx, "t", ix); err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(tmp, "d")
	dst := transporttest.OpenEndpoint(t, New(nil), Transport, d, pluginapi.ModeWrite).(*dest)
	ctx := context.Background()
	for _, b := range ix.Blobs() {
		if strings.Contains(b.Desc.MediaType, "manifest") {
			if err := dst.PutManifest(ctx, b.Desc, b.Data, ""); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := dst.PutBlob(ctx, b.Desc, bytes.NewReader(b.Data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.PutManifest(ctx, ix.Index.Desc, ix.Index.Data, ""); err != nil {
		t.Fatal(err)
	}
	transporttest.CommitClose(t, dst)
	raw := peertest.Skopeo(t, "inspect", "--raw", "dir:"+d)
	if raw != string(ix.Index.Data) {
		t.Fatalf("skopeo sees manifest %q", raw)
	}
	out := filepath.Join(tmp, "out")
	peertest.Skopeo(t, "copy", "-q", "--all", "dir:"+d, "oci:"+out+":x")
	if got := ociDigest(t, out, "x"); got != ix.Index.Desc.Digest {
		t.Fatalf("skopeo copied %s, want %s", got, ix.Index.Desc.Digest)
	}
}

func TestSourceReads(t *testing.T) {
	tmp := t.TempDir()
	img := layertest.NewImage("src", layertest.Options{})
	d := filepath.Join(tmp, "d")
	writeImage(t, d, img, "latest")
	ctx := context.Background()
	if v, _ := os.ReadFile(filepath.Join(d, "version")); string(v) != "Directory Transport Version: 1.1\n" {
		t.Fatalf("version %q", v)
	}
	src := transporttest.OpenEndpoint(t, New(nil), Transport, d, pluginapi.ModeRead).(*source)
	top, err := src.Resolve(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if top.Digest != img.Manifest.Desc.Digest || top.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("resolved %+v", top)
	}
	if _, err := src.Resolve(ctx, top.Digest.String()); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Resolve(ctx, "latest"); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("tag accepted: %v", err)
	}
	l := img.Layers[0]
	if got := transporttest.ReadBlob(t, src, l.Desc, 10); !bytes.Equal(got, l.Data[10:]) {
		t.Fatal("offset read differs")
	}
	if _, err := src.GetBlob(ctx, ocispec.Descriptor{Digest: digest.FromString("nope")}, 0); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
	if _, err := src.GetBlob(ctx, ocispec.Descriptor{Digest: "sha256:../../etc/passwd"}, 0); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("bad digest: %v", err)
	}
	if _, err := New(nil).Open(ctx, pluginapi.OpenRequest{Transport: Transport, Location: tmp, Mode: pluginapi.ModeRead}); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("dir without version: %v", err)
	}
}

func TestDestinationAtomic(t *testing.T) {
	tmp := t.TempDir()
	img := layertest.NewImage("atomic", layertest.Options{})
	ctx := context.Background()
	d := filepath.Join(tmp, "d")

	// A wrong blob is refused and leaves nothing.
	dst := transporttest.OpenEndpoint(t, New(nil), Transport, d, pluginapi.ModeWrite).(*dest)
	bad := img.Layers[0].Desc
	err := dst.PutBlob(ctx, bad, bytes.NewReader(append([]byte("x"), img.Layers[0].Data[1:]...)))
	if !errors.Is(err, core.ErrDigestMismatch) {
		t.Fatalf("wrong content: %v", err)
	}
	if ok, _ := dst.HasBlob(ctx, bad); ok {
		t.Fatal("mismatched blob counted")
	}
	if err := dst.PutBlob(ctx, bad, bytes.NewReader(img.Layers[0].Data[:5])); !errors.Is(err, core.ErrSizeMismatch) {
		t.Fatalf("short content: %v", err)
	}
	if err := dst.PutManifest(ctx, img.Manifest.Desc, img.Manifest.Data[1:], ""); err == nil {
		t.Fatal("bad manifest accepted")
	}
	// Close without Commit discards everything.
	if err := dst.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(tmp)
	if len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}

	// Replacing a previous image works; replacing other files is refused.
	for i := 0; i < 2; i++ {
		dst = transporttest.OpenEndpoint(t, New(nil), Transport, d, pluginapi.ModeWrite).(*dest)
		for _, b := range img.Blobs() {
			if err := dst.PutBlob(ctx, b.Desc, bytes.NewReader(b.Data)); err != nil {
				t.Fatal(err)
			}
		}
		if err := dst.PutManifest(ctx, img.Manifest.Desc, img.Manifest.Data, ""); err != nil {
			t.Fatal(err)
		}
		transporttest.CommitClose(t, dst)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 1 {
		t.Fatalf("after replace: %v", ents)
	}
	other := filepath.Join(tmp, "other")
	os.MkdirAll(other, 0o755)
	os.WriteFile(filepath.Join(other, "precious"), []byte("x"), 0o644)
	if _, err := New(nil).Open(ctx, pluginapi.OpenRequest{Transport: Transport, Location: other, Mode: pluginapi.ModeWrite}); !errors.Is(err, core.ErrExists) {
		t.Fatalf("non-image dir: %v", err)
	}
}

// A writer killed outright (SIGKILL) leaves its staging directory beside
// the image: the next writer of that directory removes it, and leaves one a
// live writer holds.
func TestDestinationSweepsDeadWritersStaging(t *testing.T) {
	tmp := t.TempDir()
	ctx := context.Background()
	d := filepath.Join(tmp, "d")
	dead := filepath.Join(tmp, ".d.stevedore-tmp-123")
	if err := os.MkdirAll(dead, 0o755); err != nil {
		t.Fatal(err)
	}
	live, err := atomicfile.MkdirStage(tmp, ".d.stevedore-tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Release()
	old := time.Now().Add(-2 * time.Hour)
	for _, p := range []string{dead, live.Path} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	dst := transporttest.OpenEndpoint(t, New(nil), Transport, d, pluginapi.ModeWrite).(*dest)
	dst.Close(ctx)
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Fatalf("a dead writer's staging directory is still there: %v", err)
	}
	if _, err := os.Stat(live.Path); err != nil {
		t.Fatalf("a live writer's staging directory: %v", err)
	}
}
