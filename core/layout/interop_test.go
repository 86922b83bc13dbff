package layout

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Interop tests against the real tools. They skip only when a tool is
// missing outside CI (CI=true makes them fail instead).

func skopeo(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, needTool(t, "skopeo"), append([]string{"--insecure-policy"}, args...)...)
}

func TestInteropSkopeoReadsOurs(t *testing.T) {
	needTool(t, "skopeo")
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "ours")
	s, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	im := makeImage(t, 7, 2, 3000)
	writeImage(t, s, im, "v1")
	ti := makeIndex(t, 20)
	writeIndexImage(t, s, ti, "multi")

	raw := skopeo(t, "inspect", "--raw", "oci:"+dir+":v1")
	if raw != string(im.manifest.data) {
		t.Fatalf("skopeo inspect --raw = %s, want %s", raw, im.manifest.data)
	}
	var info struct {
		Digest       digest.Digest
		Architecture string
		Layers       []string
	}
	if err := json.Unmarshal([]byte(skopeo(t, "inspect", "oci:"+dir+":v1")), &info); err != nil {
		t.Fatal(err)
	}
	if info.Digest != im.manifest.desc.Digest || info.Architecture != "amd64" || len(info.Layers) != 2 {
		t.Fatalf("skopeo inspect = %+v", info)
	}

	// Copy to a fresh layout and into our layout under a new name: the
	// manifest digests are kept and we can read skopeo's output.
	other := filepath.Join(t.TempDir(), "theirs")
	skopeo(t, "copy", "oci:"+dir+":v1", "oci:"+other+":copied")
	skopeo(t, "copy", "--all", "oci:"+dir+":multi", "oci:"+other+":multi")
	skopeo(t, "copy", "oci:"+dir+":v1", "oci:"+dir+":by-skopeo")
	theirs, err := Open(other)
	if err != nil {
		t.Fatal(err)
	}
	checkImage(t, theirs, im, "copied")
	d, err := theirs.Resolve(ctx, "multi")
	if err != nil || d.Digest != ti.index.desc.Digest || d.MediaType != ocispec.MediaTypeImageIndex {
		t.Fatalf("Resolve(multi) in skopeo's copy = %+v, %v", d, err)
	}
	for _, child := range ti.images {
		checkImage(t, theirs, child, child.manifest.desc.Digest.String())
	}
	s2, _ := Open(dir)
	checkImage(t, s2, im, "by-skopeo")
	checkImage(t, s2, im, "v1")
	if tags, _ := s2.Tags(ctx); !reflect.DeepEqual(tags, []string{"by-skopeo", "multi", "v1"}) {
		t.Fatalf("Tags after skopeo wrote into our layout = %v", tags)
	}
	// And we can keep writing into a layout skopeo made.
	im2 := makeImage(t, 8, 1, 100)
	writeImage(t, theirs, im2, "ours-too")
	if raw := skopeo(t, "inspect", "--raw", "oci:"+other+":ours-too"); raw != string(im2.manifest.data) {
		t.Fatalf("skopeo cannot read what we added to its layout: %s", raw)
	}
	if raw := skopeo(t, "inspect", "--raw", "oci:"+other+":copied"); raw != string(im.manifest.data) {
		t.Fatalf("skopeo lost its own tag after our write: %s", raw)
	}
}

func TestInteropUmoci(t *testing.T) {
	umoci := needTool(t, "umoci")
	ctx := context.Background()

	// umoci writes, we read.
	theirs := filepath.Join(t.TempDir(), "umoci")
	run(t, umoci, "init", "--layout", theirs)
	run(t, umoci, "new", "--image", theirs+":fresh")
	s, err := Open(theirs)
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Resolve(ctx, "fresh")
	if err != nil {
		t.Fatal(err)
	}
	if d.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("umoci's entry = %+v", d)
	}
	raw, err := s.ReadBlob(ctx, d, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, b := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if _, err := s.ReadBlob(ctx, b, 1<<30); err != nil {
			t.Fatalf("umoci blob: %v", err)
		}
	}
	if _, err := s.Resolve(ctx, ""); err != nil {
		t.Fatalf("single-image umoci layout, Resolve(\"\") = %v", err)
	}

	// We write into umoci's layout and into our own; umoci lists and stats.
	im := makeImage(t, 3, 1, 1000)
	writeImage(t, s, im, "ours")
	ours := filepath.Join(t.TempDir(), "ours")
	s2, err := Create(ours)
	if err != nil {
		t.Fatal(err)
	}
	writeImage(t, s2, im, "v1")
	writeImage(t, s2, makeImage(t, 4, 1, 10), "v2")
	for dir, want := range map[string][]string{theirs: {"fresh", "ours"}, ours: {"v1", "v2"}} {
		got := strings.Fields(run(t, umoci, "ls", "--layout", dir))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("umoci ls --layout %s = %v, want %v", dir, got, want)
		}
	}
	// umoci gc lists blobs/sha256 and fails on any name that is not a
	// digest: our temporary files must never be there.
	run(t, umoci, "gc", "--layout", ours)
	stat := run(t, umoci, "stat", "--json", "--image", ours+":v1")
	if !json.Valid([]byte(stat)) {
		t.Fatalf("umoci stat: %s", stat)
	}
	// umoci can go on writing into our layout (it rewrites index.json).
	run(t, umoci, "new", "--image", ours+":by-umoci")
	if tags, _ := s2.Tags(ctx); !reflect.DeepEqual(tags, []string{"by-umoci", "v1", "v2"}) {
		t.Fatalf("Tags after umoci wrote into our layout = %v", tags)
	}
	if _, err := os.Stat(filepath.Join(ours, "oci-layout")); err != nil {
		t.Fatal(err)
	}
}
