package ocilayout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

func open(t *testing.T, loc string, mode pluginapi.Mode) pluginapi.Endpoint {
	t.Helper()
	ep, err := New().Open(context.Background(), pluginapi.OpenRequest{Transport: TransportName, Location: loc, Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close(context.Background()) })
	return ep
}

func put(t *testing.T, d pluginapi.Destination, a transporttest.Artifact, ref string) {
	t.Helper()
	ctx := context.Background()
	for _, b := range a.Blobs() {
		if err := d.PutBlob(ctx, b.Descriptor, bytes.NewReader(b.Data)); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range a.ChildManifests() {
		if err := d.PutManifest(ctx, m.Descriptor, m.Data, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.PutManifest(ctx, a.Top().Descriptor, a.Top().Data, ref); err != nil {
		t.Fatal(err)
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	p := New()
	loc := newLocation(t)
	tests := []struct {
		name    string
		req     pluginapi.OpenRequest
		wantErr error
	}{
		{"other transport", pluginapi.OpenRequest{Transport: "docker", Location: loc, Mode: pluginapi.ModeRead}, core.ErrUnsupported},
		{"empty location", pluginapi.OpenRequest{Transport: "oci", Mode: pluginapi.ModeRead}, core.ErrInvalid},
		{"read missing layout", pluginapi.OpenRequest{Transport: "oci", Location: loc, Mode: pluginapi.ModeRead}, core.ErrNotFound},
		{"bad mode", pluginapi.OpenRequest{Transport: "oci", Location: loc, Mode: 7}, core.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := p.Open(ctx, tt.req); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open = %v, want %v", err, tt.wantErr)
			}
		})
	}
	w := open(t, loc, pluginapi.ModeWrite)
	if _, err := os.Stat(filepath.Join(loc, "oci-layout")); err != nil {
		t.Fatalf("ModeWrite did not create the layout: %v", err)
	}
	r := open(t, loc, pluginapi.ModeRead)
	wantRead := []string{pluginapi.CapSource, pluginapi.CapListTags, pluginapi.CapListRepositories, pluginapi.CapReferrers, pluginapi.CapBlobPath}
	if got := pluginapi.Capabilities(r); !slices.Equal(got, wantRead) {
		t.Errorf("ModeRead capabilities = %v, want %v", got, wantRead)
	}
	wantWrite := []string{pluginapi.CapSource, pluginapi.CapDest, pluginapi.CapListTags, pluginapi.CapListRepositories, pluginapi.CapReferrers, pluginapi.CapDelete, pluginapi.CapMount, pluginapi.CapBlobPath, pluginapi.CapPutBlobFile, pluginapi.CapStageBlob}
	if got := pluginapi.Capabilities(w); !slices.Equal(got, wantWrite) {
		t.Errorf("ModeWrite capabilities = %v, want %v", got, wantWrite)
	}
}

// A directory that is not a layout opens for reading as a tree: it lists
// the layouts below it, and reading an image from it fails as before
// ("not an OCI layout").
func TestTreeOfLayouts(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	for _, d := range []string{"team/api", "team/web"} {
		if _, err := layout.Create(filepath.Join(root, d)); err != nil {
			t.Fatal(err)
		}
	}
	tree := open(t, root, pluginapi.ModeRead)
	if got := pluginapi.Capabilities(tree); !slices.Equal(got, []string{pluginapi.CapSource, pluginapi.CapListTags, pluginapi.CapListRepositories}) {
		t.Fatalf("tree capabilities %v", got)
	}
	locs, err := tree.(pluginapi.RepositoryLister).ListRepositories(ctx)
	if err != nil || !slices.Equal(locs, []string{root + "/team/api", root + "/team/web"}) {
		t.Fatalf("ListRepositories = %v, %v", locs, err)
	}
	if _, err := tree.(pluginapi.Source).Resolve(ctx, "v1"); !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), "not an OCI layout") {
		t.Fatalf("Resolve in a tree: %v", err)
	}
	api := open(t, root+"/team/api", pluginapi.ModeRead)
	if locs, err := api.(pluginapi.RepositoryLister).ListRepositories(ctx); err != nil || !slices.Equal(locs, []string{root + "/team/api"}) {
		t.Fatalf("a layout lists itself: %v, %v", locs, err)
	}
}

func TestResolveDescriptor(t *testing.T) {
	ctx := context.Background()
	loc := newLocation(t)
	s, err := layout.Create(loc)
	if err != nil {
		t.Fatal(err)
	}
	img := transporttest.RandomImage(1, 1, 100)
	w := open(t, loc, pluginapi.ModeWrite).(pluginapi.Destination)
	put(t, w, img, "")
	d := img.Manifest.Descriptor
	d.Annotations = map[string]string{"org.example": "kept"}
	d.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	if err := s.Tag(ctx, d, "v1"); err != nil {
		t.Fatal(err)
	}
	got, err := open(t, loc, pluginapi.ModeRead).(pluginapi.Source).Resolve(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Annotations[ocispec.AnnotationRefName]; ok || got.Annotations["org.example"] != "kept" {
		t.Errorf("annotations = %v", got.Annotations)
	}
	if got.Platform == nil || got.Platform.Architecture != "amd64" || got.Digest != d.Digest || got.Size != d.Size || got.MediaType != d.MediaType {
		t.Errorf("Resolve = %+v", got)
	}
}

func TestPutManifestIndexEntries(t *testing.T) {
	ctx := context.Background()
	loc := newLocation(t)
	w := open(t, loc, pluginapi.ModeWrite).(pluginapi.Destination)
	ix := transporttest.RandomIndex(1, 1, 100)
	put(t, w, ix, "multi")
	img := transporttest.RandomImage(5, 1, 100)
	put(t, w, img, img.Manifest.Descriptor.Digest.String())
	sig := transporttest.RandomReferrer(6, img.Manifest.Descriptor, "application/x-sig")
	put(t, w, sig, "")
	s, _ := layout.Open(loc)
	idx, err := s.Index(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct{ digest, name string }
	var got []entry
	for _, e := range idx.Manifests {
		got = append(got, entry{e.Digest.String(), e.Annotations[ocispec.AnnotationRefName]})
	}
	// The index children are stored by digest only; the untagged image and
	// the referrer get entries without a name.
	want := []entry{
		{ix.Index.Descriptor.Digest.String(), "multi"},
		{img.Manifest.Descriptor.Digest.String(), ""},
		{sig.Manifest.Descriptor.Digest.String(), ""},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("index.json entries = %v, want %v", got, want)
	}
}

func TestGetBlobBadOffset(t *testing.T) {
	loc := newLocation(t)
	img := transporttest.RandomImage(1, 1, 100)
	put(t, open(t, loc, pluginapi.ModeWrite).(pluginapi.Destination), img, "v1")
	src := open(t, loc, pluginapi.ModeRead).(pluginapi.Source)
	for _, off := range []int64{-1, img.Layers[0].Descriptor.Size + 1} {
		if _, err := src.GetBlob(context.Background(), img.Layers[0].Descriptor, off); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("GetBlob at %d = %v, want ErrInvalid", off, err)
		}
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestMountBlob(t *testing.T) {
	ctx := context.Background()
	from := newLocation(t)
	img := transporttest.RandomImage(1, 1, 1000)
	put(t, open(t, from, pluginapi.ModeWrite).(pluginapi.Destination), img, "v1")
	loc := newLocation(t)
	w := open(t, loc, pluginapi.ModeWrite)
	m := w.(pluginapi.Mounter)
	layer := img.Layers[0].Descriptor

	if ok, err := m.MountBlob(ctx, layer, t.TempDir()); ok || err != nil {
		t.Fatalf("mount from a non-layout = %v, %v; want false, nil", ok, err)
	}
	if ok, err := m.MountBlob(ctx, layer, from); !ok || err != nil {
		t.Fatalf("mount = %v, %v", ok, err)
	}
	fs, _ := layout.Open(from)
	ls, _ := layout.Open(loc)
	src, _ := fs.BlobPath(layer.Digest)
	dst, _ := ls.BlobPath(layer.Digest)
	if inode(t, src) != inode(t, dst) {
		t.Error("mounted blob is not a hard link of the source blob")
	}
	if ok, err := m.MountBlob(ctx, layer, loc); !ok || err != nil {
		t.Fatalf("mount from itself = %v, %v", ok, err)
	}

	// A corrupted source blob is refused and not made visible.
	cfg := img.Config.Descriptor
	cp, _ := fs.BlobPath(cfg.Digest)
	os.Remove(cp)
	os.WriteFile(cp, bytes.Repeat([]byte("x"), int(cfg.Size)), 0o644)
	if ok, err := m.MountBlob(ctx, cfg, from); ok || !errors.Is(err, core.ErrDigestMismatch) {
		t.Fatalf("mount of a corrupted blob = %v, %v; want ErrDigestMismatch", ok, err)
	}
	if ok, _ := w.(pluginapi.Destination).HasBlob(ctx, cfg); ok {
		t.Fatal("corrupted blob visible after a refused mount")
	}
}

func needSkopeo(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("skopeo")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("skopeo is required in CI: %v", err)
		}
		t.Skip("skopeo not installed; install it to run this interop test")
	}
	return p
}

// TestInteropSkopeo: what the transport writes skopeo copies without
// changing digests, and what skopeo writes the transport reads.
func TestInteropSkopeo(t *testing.T) {
	skopeo := needSkopeo(t)
	ctx := context.Background()
	ours := newLocation(t)
	ix := transporttest.RandomIndex(3, 2, 4000)
	img := transporttest.RandomImage(9, 1, 4000)
	w := open(t, ours, pluginapi.ModeWrite).(pluginapi.Destination)
	put(t, w, ix, "multi")
	put(t, w, img, "single")
	theirs := newLocation(t)
	for _, args := range [][]string{
		{"copy", "--all", "oci:" + ours + ":multi", "oci:" + theirs + ":multi"},
		{"copy", "oci:" + ours + ":single", "oci:" + theirs + ":single"},
	} {
		if out, err := exec.Command(skopeo, append([]string{"--insecure-policy"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("skopeo %v: %v\n%s", args, err, out)
		}
	}
	src := open(t, theirs, pluginapi.ModeRead).(pluginapi.Source)
	for ref, a := range map[string]transporttest.Artifact{"multi": ix, "single": img} {
		d, err := src.Resolve(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if d.Digest != a.Top().Descriptor.Digest {
			t.Fatalf("skopeo changed %s: %s, want %s", ref, d.Digest, a.Top().Descriptor.Digest)
		}
		for dg, data := range transporttest.BlobMap(a) {
			rc, err := src.GetBlob(ctx, ocispec.Descriptor{Digest: dg, Size: int64(len(data))}, 0)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, data) {
				t.Fatalf("blob %s differs after skopeo copy", dg)
			}
		}
	}
	tags, err := open(t, theirs, pluginapi.ModeRead).(pluginapi.TagLister).ListTags(ctx)
	if err != nil || !slices.Equal(tags, []string{"multi", "single"}) {
		t.Fatalf("ListTags of skopeo's layout = %v, %v", tags, err)
	}
	var info struct{ Architecture string }
	out, err := exec.Command(skopeo, "--insecure-policy", "inspect", "--override-arch", "arm64", "oci:"+ours+":multi").Output()
	if err != nil || json.Unmarshal(out, &info) != nil || info.Architecture != "arm64" {
		t.Fatalf("skopeo inspect of our index for arm64 = %s, %v", out, err)
	}
}
