package layout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
)

func TestOpenErrors(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	os.WriteFile(file, nil, 0o644)
	mk := func(name string, files map[string]string) string {
		d := filepath.Join(base, name)
		os.MkdirAll(d, 0o755)
		for n, c := range files {
			os.WriteFile(filepath.Join(d, n), []byte(c), 0o644)
		}
		return d
	}
	okIndex := `{"schemaVersion":2,"manifests":[]}`
	tests := []struct {
		name    string
		dir     string
		wantErr error
	}{
		{"missing", filepath.Join(base, "nope"), core.ErrNotFound},
		{"a file", file, core.ErrInvalid},
		{"no oci-layout", mk("empty", nil), core.ErrNotFound},
		{"bad json", mk("badjson", map[string]string{"oci-layout": "{", "index.json": okIndex}), core.ErrInvalid},
		{"bad version", mk("v2", map[string]string{"oci-layout": `{"imageLayoutVersion":"2.0.0"}`, "index.json": okIndex}), core.ErrUnsupported},
		{"no index", mk("noindex", map[string]string{"oci-layout": `{"imageLayoutVersion":"1.0.0"}`}), core.ErrInvalid},
		{"empty name", "", core.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(tt.dir)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open(%q) = %v, want %v", tt.dir, err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), tt.dir) {
				t.Fatalf("error %q is not one line naming the dir", err)
			}
		})
	}
	// A bad marker makes Create fail too rather than overwrite it.
	if _, err := Create(filepath.Join(base, "v2")); !errors.Is(err, core.ErrUnsupported) {
		t.Fatalf("Create over a v2 layout = %v", err)
	}
}

// An index.json entry no blob can match (negative size, malformed digest)
// is one error naming the entry, not a crash when the entry is read.
func TestIndexBadEntries(t *testing.T) {
	good := digest.FromString("x")
	for name, entry := range map[string]string{
		"negative size": `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + good.String() + `","size":-1}`,
		"bad digest":    `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bad","size":1}`,
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
		os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"a/b","digest":"`+good.String()+`","size":1},`+entry+`]}`), 0o644)
		s, err := Open(dir)
		if err == nil {
			_, err = s.Resolve(context.Background(), "")
		}
		if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "manifests[1]") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line naming manifests[1]", name, err)
		}
	}
}

func TestCreate(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	var marker map[string]any
	b, _ := os.ReadFile(filepath.Join(dir, "oci-layout"))
	if json.Unmarshal(b, &marker); !reflect.DeepEqual(marker, map[string]any{"imageLayoutVersion": "1.0.0"}) {
		t.Fatalf("oci-layout = %s", b)
	}
	var idx map[string]any
	b, _ = os.ReadFile(filepath.Join(dir, "index.json"))
	json.Unmarshal(b, &idx)
	want := map[string]any{"schemaVersion": float64(2), "mediaType": ocispec.MediaTypeImageIndex, "manifests": []any{}}
	if !reflect.DeepEqual(idx, want) {
		t.Fatalf("index.json = %s", b)
	}
	if fi, err := os.Stat(filepath.Join(dir, "blobs")); err != nil || !fi.IsDir() {
		t.Fatalf("no blobs dir: %v", err)
	}
	im := makeImage(t, 1, 1, 100)
	writeImage(t, s, im, "v1")
	// Create on an existing layout keeps its content; Open works too.
	for _, f := range []func(string) (*Store, error){Create, Open} {
		s2, err := f(dir)
		if err != nil {
			t.Fatal(err)
		}
		checkImage(t, s2, im, "v1")
	}
	if tags, _ := s.Tags(ctx); !reflect.DeepEqual(tags, []string{"v1"}) {
		t.Fatalf("Tags = %v", tags)
	}
}

// Resolving many names parses index.json once while it stays the same
// file; a tag written here, or index.json replaced or rewritten by another
// tool, is seen at once; changing what Index returned changes nothing kept.
func TestIndexCached(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a, b := makeImage(t, 1, 1, 100), makeImage(t, 2, 1, 100)
	writeImage(t, s, a, "v1")
	before := indexReads.Load()
	for range 100 {
		checkImage(t, s, a, "v1")
	}
	if n := indexReads.Load() - before; n > 1 {
		t.Fatalf("100 resolves parsed index.json %d times", n)
	}
	// Tags written here do not make the next tag, or a resolve, parse the
	// file again: what was written is kept.
	before = indexReads.Load()
	writeImage(t, s, b, "v2")
	for i := range 20 {
		if err := s.Tag(ctx, b.manifest.desc, fmt.Sprint("w", i)); err != nil {
			t.Fatal(err)
		}
		checkImage(t, s, b, fmt.Sprint("w", i))
	}
	checkImage(t, s, b, "v2")
	if n := indexReads.Load() - before; n > 0 {
		t.Fatalf("21 tags and their resolves parsed index.json %d times", n)
	}

	idx, _ := s.Index(ctx)
	idx.Manifests[0].Annotations[ocispec.AnnotationRefName] = "changed"
	idx.Manifests = idx.Manifests[:1]
	checkImage(t, s, b, "v2")
	checkImage(t, s, a, "v1")

	// Another tool rewrites index.json in place, same size: v1 and v2
	// swap digests.
	path := filepath.Join(s.dir, "index.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	swapped := strings.NewReplacer(`"v1"`, `"v2"`, `"v2"`, `"v1"`).Replace(string(raw))
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(swapped), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	checkImage(t, s, a, "v2")
	checkImage(t, s, b, "v1")
}

func TestTagResolve(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a, b := makeImage(t, 1, 2, 1000), makeImage(t, 2, 1, 1000)
	writeImage(t, s, a, "v1")
	writeImage(t, s, b, "v2")
	if err := s.Tag(ctx, a.manifest.desc, "latest"); err != nil {
		t.Fatal(err)
	}
	checkImage(t, s, a, "v1")
	checkImage(t, s, b, "v2")
	checkImage(t, s, a, "latest")
	checkImage(t, s, a, a.manifest.desc.Digest.String())

	// Retagging moves the tag in place.
	if err := s.Tag(ctx, b.manifest.desc, "latest"); err != nil {
		t.Fatal(err)
	}
	checkImage(t, s, b, "latest")
	idx, _ := s.Index(ctx)
	if len(idx.Manifests) != 3 || refName(idx.Manifests[2]) != "latest" || idx.Manifests[2].Digest != b.manifest.desc.Digest {
		t.Fatalf("index after retag: %+v", idx.Manifests)
	}
	tags, _ := s.Tags(ctx)
	if !reflect.DeepEqual(tags, []string{"latest", "v1", "v2"}) {
		t.Fatalf("Tags = %v", tags)
	}

	// Untagged entries: "" and the own digest both add one entry, once.
	c := makeImage(t, 3, 1, 10)
	writeImage(t, s, c, "")
	if err := s.Tag(ctx, c.manifest.desc, c.manifest.desc.Digest.String()); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, a.manifest.desc, ""); err != nil { // a already has an entry
		t.Fatal(err)
	}
	idx, _ = s.Index(ctx)
	if len(idx.Manifests) != 4 || refName(idx.Manifests[3]) != "" {
		t.Fatalf("index after untagged adds: %+v", idx.Manifests)
	}
	checkImage(t, s, c, c.manifest.desc.Digest.String())

	// Several images and no name: the error lists them.
	_, err := s.Resolve(ctx, "")
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "v1") || !strings.Contains(err.Error(), "(untagged)") {
		t.Fatalf("Resolve(\"\") = %v", err)
	}
	if _, err := s.Resolve(ctx, "nope"); !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), "v2") {
		t.Fatalf("Resolve(nope) = %v", err)
	}
	if _, err := s.Resolve(ctx, digest.FromString("x").String()); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("Resolve(missing digest) = %v", err)
	}
	if _, err := s.Resolve(ctx, "sha256:zz"); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("Resolve(bad digest) = %v", err)
	}
}

func TestResolveDefault(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.Resolve(ctx, ""); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("empty layout: %v", err)
	}
	a := makeImage(t, 1, 1, 10)
	writeImage(t, s, a, "v1")
	checkImage(t, s, a, "")
	// Two names for one image are still one image.
	s.Tag(ctx, a.manifest.desc, "v2")
	checkImage(t, s, a, "")
}

func TestResolveChildByDigest(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a := makeImage(t, 1, 1, 10)
	// Stored by digest only, like a child of an index; the manifest has no
	// mediaType field so it must be sniffed from its shape.
	var m map[string]any
	json.Unmarshal(a.manifest.data, &m)
	delete(m, "mediaType")
	raw, _ := json.Marshal(m)
	child := newBlob("", raw)
	for _, b := range a.blobs() {
		s.WriteBlobBytes(ctx, b.desc, b.data)
	}
	if err := s.WriteBlobBytes(ctx, child.desc, child.data); err != nil {
		t.Fatal(err)
	}
	got, err := s.Resolve(ctx, child.desc.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if got.MediaType != ocispec.MediaTypeImageManifest || got.Size != child.desc.Size {
		t.Fatalf("Resolve child = %+v", got)
	}
	// A layer is not a manifest.
	if _, err := s.Resolve(ctx, a.layers[0].desc.Digest.String()); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("Resolve(layer) = %v", err)
	}
	// Tag with an empty media type sniffs it too.
	if err := s.Tag(ctx, child.desc, "sniffed"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Resolve(ctx, "sniffed"); got.MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("sniffed media type = %q", got.MediaType)
	}
}

func TestResolveForeignNames(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a, b, c := makeImage(t, 1, 1, 10), makeImage(t, 2, 1, 10), makeImage(t, 3, 1, 10)
	for _, im := range []testImage{a, b, c} {
		writeImage(t, s, im, "")
	}
	entry := func(im testImage, ann map[string]string) ocispec.Descriptor {
		d := im.manifest.desc
		d.Annotations = ann
		return d
	}
	idx := ocispec.Index{Manifests: []ocispec.Descriptor{
		entry(a, map[string]string{ocispec.AnnotationRefName: "docker.io/library/alpine:3.20"}),
		entry(b, map[string]string{ocispec.AnnotationRefName: "edge", containerdNameAnnotation: "docker.io/library/alpine:edge"}),
		entry(c, map[string]string{ocispec.AnnotationRefName: "localhost:5000/x/y:1.0"}),
	}}
	if err := s.writeIndex(idx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ref  string
		want testImage
	}{
		{"docker.io/library/alpine:3.20", a},
		{"3.20", a},
		{"edge", b},
		{"docker.io/library/alpine:edge", b},
		{"1.0", c},
		{"localhost:5000/x/y:1.0", c},
	}
	for _, tt := range tests {
		got, err := s.Resolve(ctx, tt.ref)
		if err != nil || got.Digest != tt.want.manifest.desc.Digest {
			t.Errorf("Resolve(%q) = %s, %v; want %s", tt.ref, got.Digest, err, tt.want.manifest.desc.Digest)
		}
	}
	for _, ref := range []string{"5000/x/y:1.0", "alpine", "library/alpine:3.20x"} {
		if _, err := s.Resolve(ctx, ref); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("Resolve(%q) = %v, want ErrNotFound", ref, err)
		}
	}
	// Two entries named alike with different digests are ambiguous.
	idx.Manifests = append(idx.Manifests, entry(b, map[string]string{ocispec.AnnotationRefName: "other/alpine:3.20"}))
	s.writeIndex(idx)
	if _, err := s.Resolve(ctx, "3.20"); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("ambiguous Resolve = %v", err)
	}
}

func TestTagErrors(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a := makeImage(t, 1, 1, 10)
	if err := s.Tag(ctx, a.manifest.desc, "v1"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("Tag before the blob exists = %v", err)
	}
	writeImage(t, s, a, "v1")
	wrongSize := a.manifest.desc
	wrongSize.Size++
	if err := s.Tag(ctx, wrongSize, "v2"); !errors.Is(err, core.ErrSizeMismatch) {
		t.Fatalf("Tag with a wrong size = %v", err)
	}
	for _, name := range []string{"-x", "a b", "x\ny", "sha256:" + strings.Repeat("a", 64), ".hidden", "ü"} {
		if err := s.Tag(ctx, a.manifest.desc, name); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("Tag(%q) = %v, want ErrInvalid", name, err)
		}
	}
	for _, name := range []string{"v1.0_beta", "a__b", "1.0-", "org/repo:tag", "x@y+z"} {
		if err := s.Tag(ctx, a.manifest.desc, name); err != nil {
			t.Errorf("Tag(%q) = %v", name, err)
		}
	}
	// The ref.name annotation given in desc is replaced, other annotations kept.
	d := a.manifest.desc
	d.Annotations = map[string]string{ocispec.AnnotationRefName: "ignored", "k": "v"}
	d.Platform = &ocispec.Platform{OS: "linux", Architecture: "arm64"}
	if err := s.Tag(ctx, d, "annotated"); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Resolve(ctx, "annotated")
	if got.Annotations["k"] != "v" || refName(got) != "annotated" || got.Platform == nil || got.Platform.Architecture != "arm64" {
		t.Fatalf("entry = %+v", got)
	}
	if _, err := s.Resolve(ctx, "ignored"); !errors.Is(err, core.ErrNotFound) {
		t.Fatal("ref.name from the descriptor was stored")
	}
}

func TestUntagDelete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a, b := makeImage(t, 1, 1, 10), makeImage(t, 2, 1, 10)
	writeImage(t, s, a, "v1")
	s.Tag(ctx, a.manifest.desc, "v1b")
	writeImage(t, s, b, "v2")
	s.Tag(ctx, b.manifest.desc, "")

	if err := s.Untag(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx, "v1"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("v1 still resolves: %v", err)
	}
	checkImage(t, s, a, "v1b") // the blobs stay
	if err := s.Untag(ctx, "v1"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("second Untag = %v", err)
	}
	if err := s.Delete(ctx, "v1b"); err != nil {
		t.Fatal(err)
	}
	// Deleting by digest removes the tagged and the untagged entry of b.
	if err := s.Delete(ctx, b.manifest.desc.Digest.String()); err != nil {
		t.Fatal(err)
	}
	idx, _ := s.Index(ctx)
	if len(idx.Manifests) != 0 {
		t.Fatalf("index not empty: %+v", idx.Manifests)
	}
	if err := s.Delete(ctx, b.manifest.desc.Digest.String()); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("second Delete = %v", err)
	}
	if ok, _ := s.HasBlob(ctx, b.manifest.desc); !ok {
		t.Fatal("Delete removed a blob")
	}
}

// writeTagged writes n images tagged prefix-i into the layout at dir.
func writeTagged(t testing.TB, dir, prefix string, seed uint64, n int) {
	s, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	shared := makeImage(t, 999, 1, 5000) // the same blobs written by everyone
	for i := range n {
		im := makeImage(t, seed+uint64(i), 1, 2000)
		im.layers = append(im.layers, shared.layers...)
		writeImage(t, s, im, fmt.Sprintf("%s-%d", prefix, i))
	}
}

func checkTagged(t *testing.T, dir string, prefixes map[string]uint64, n int) {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tags, _ := s.Tags(context.Background())
	if len(tags) != len(prefixes)*n {
		t.Fatalf("got %d tags, want %d: %v", len(tags), len(prefixes)*n, tags)
	}
	shared := makeImage(t, 999, 1, 5000)
	for p, seed := range prefixes {
		for i := range n {
			im := makeImage(t, seed+uint64(i), 1, 2000)
			im.layers = append(im.layers, shared.layers...)
			checkImage(t, s, im, fmt.Sprintf("%s-%d", p, i))
		}
	}
	if left := tmpFiles(t, dir); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestConcurrentTaggersGoroutines(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	prefixes := map[string]uint64{}
	var wg sync.WaitGroup
	for g := range 8 {
		p := "g" + strconv.Itoa(g)
		prefixes[p] = uint64(g * 100)
		wg.Add(1)
		go func() {
			defer wg.Done()
			writeTagged(t, dir, p, uint64(g*100), 5)
		}()
	}
	wg.Wait()
	checkTagged(t, dir, prefixes, 5)
}

const helperEnv = "STEVEDORE_LAYOUT_TEST_HELPER"

// TestHelperProcess is the body of the child processes of
// TestConcurrentTaggersProcesses; it does nothing in a normal run.
func TestHelperProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		return
	}
	parts := strings.Split(spec, ",") // dir,prefix,seed,n
	seed, _ := strconv.ParseUint(parts[2], 10, 64)
	n, _ := strconv.Atoi(parts[3])
	writeTagged(t, parts[0], parts[1], seed, n)
}

func TestConcurrentTaggersProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "layout")
	prefixes := map[string]uint64{"p0": 0, "p1": 1000, "p2": 2000}
	const n = 15
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for p, seed := range prefixes {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%d,%d", helperEnv, dir, p, seed, n))
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		outs = append(outs, out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper process: %v\n%s", err, outs[i])
		}
	}
	checkTagged(t, dir, prefixes, n)
}

func TestTagCancelledWhileLocked(t *testing.T) {
	s := newStore(t)
	a := makeImage(t, 1, 1, 10)
	writeImage(t, s, a, "v1")
	unlock, err := s.lock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Tag(ctx, a.manifest.desc, "v2") }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Tag with the lock held elsewhere = %v, want context.Canceled", err)
	}
}
