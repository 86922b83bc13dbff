package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/server"
	"github.com/stevedore-oci/stevedore/server/storage"
)

func TestGC(t *testing.T) {
	srv, ts, root := gcServer(t)
	keep := randomImage(t, "amd64", 2)
	drop := randomImage(t, "arm64", 2)
	pushImage(t, ts.URL, "a", "keep", keep)
	pushImage(t, ts.URL, "a", "drop", drop)
	pushImage(t, ts.URL, "b", "drop", drop)
	orphan := newBlob("", randomBytes(3000))
	pushBlob(t, ts.URL, "a", orphan)
	if st, _, _ := do(t, "DELETE", ts.URL+"/v2/a/manifests/drop", nil); st != http.StatusAccepted {
		t.Fatal("untag")
	}
	exists := func(repo string, b blob) bool {
		_, err := os.Stat(filepath.Join(root, repo, "blobs/sha256", b.desc.Digest.Encoded()))
		return err == nil
	}
	shared := func(b blob) bool {
		_, err := os.Stat(filepath.Join(root, ".blobs/sha256", b.desc.Digest.Encoded()))
		return err == nil
	}
	ctx := context.Background()
	st := srv.Store()

	// Within the grace period nothing goes: a push may be in progress.
	rep, err := st.GC(ctx, storage.GCOptions{DeleteUntagged: true, Grace: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rep.BlobsUnlinked != 0 || rep.SharedRemoved != 0 || !exists("a", orphan) {
		t.Fatalf("gc inside the grace period removed %+v", rep)
	}
	time.Sleep(20 * time.Millisecond)
	// Dry run: reports, removes nothing.
	rep, err = st.GC(ctx, storage.GCOptions{DryRun: true, DeleteUntagged: true, Grace: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.BlobsUnlinked == 0 || len(rep.ManifestsDropped) != 1 || !exists("a", orphan) || !exists("a", drop.layers[0]) {
		t.Fatalf("dry run: %+v", rep)
	}
	// Without --delete-untagged the untagged manifest keeps its blobs.
	if _, err := st.GC(ctx, storage.GCOptions{Grace: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if exists("a", orphan) || !exists("a", drop.layers[0]) {
		t.Fatal("gc without --delete-untagged: orphan must go, untagged image must stay")
	}
	if st, _, _ := do(t, "GET", ts.URL+"/v2/a/manifests/"+drop.manifest.desc.Digest.String(), nil); st != 200 {
		t.Fatalf("untagged manifest after gc: %d", st)
	}
	rep, err = st.GC(ctx, storage.GCOptions{DeleteUntagged: true, Grace: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.ManifestsDropped) != 1 || exists("a", drop.layers[0]) || exists("a", drop.manifest) {
		t.Fatalf("gc --delete-untagged: %+v", rep)
	}
	if st, _, _ := do(t, "GET", ts.URL+"/v2/a/manifests/"+drop.manifest.desc.Digest.String(), nil); st != 404 {
		t.Fatalf("dropped manifest still served: %d", st)
	}
	// Still used by repository b, so the shared copy stays; the orphan's goes.
	if !shared(drop.layers[0]) || !exists("b", drop.layers[0]) || shared(orphan) {
		t.Fatal("shared blobs after gc")
	}
	for _, b := range append([]blob{keep.manifest, keep.config}, keep.layers...) {
		if !exists("a", b) {
			t.Fatalf("gc removed %s of a tagged image", b.desc.Digest)
		}
	}
	if st, _, _ := do(t, "GET", ts.URL+"/v2/a/manifests/keep", nil); st != 200 {
		t.Fatalf("tagged image after gc: %d", st)
	}
}

// gc --delete-untagged keeps what a tag reaches through an index (its
// images, pushed untagged) and the referrers of those images (cosign sign
// --recursive signs each): none is reported or removed.
func TestGCKeepsIndexImagesAndTheirReferrers(t *testing.T) {
	srv, ts, _ := gcServer(t)
	amd, arm := randomImage(t, "amd64", 1), randomImage(t, "arm64", 1)
	for _, im := range []image{amd, arm} {
		pushImage(t, ts.URL, "a", im.manifest.desc.Digest.String(), im)
	}
	idx := indexOf(amd, arm)
	pushManifest(t, ts.URL, "a", "v1", idx)
	// A referrer of the amd64 image, pushed by digest.
	empty := newBlob(ocispec.MediaTypeEmptyJSON, []byte("{}"))
	pushBlob(t, ts.URL, "a", empty)
	sig, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		ArtifactType: "application/vnd.example.sig", Config: empty.desc, Layers: []ocispec.Descriptor{empty.desc}, Subject: &amd.manifest.desc})
	ref := newBlob(ocispec.MediaTypeImageManifest, sig)
	pushManifest(t, ts.URL, "a", ref.desc.Digest.String(), ref)
	// And an unrelated untagged image, which does go.
	stray := randomImage(t, "s390x", 1)
	pushImage(t, ts.URL, "a", stray.manifest.desc.Digest.String(), stray)

	// NoGrace (gc --grace 0): what was just written counts as old.
	rep, err := srv.Store().GC(context.Background(), storage.GCOptions{DeleteUntagged: true, Grace: storage.NoGrace})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.ManifestsDropped) != 1 || rep.ManifestsDropped[0] != "a@"+stray.manifest.desc.Digest.String() {
		t.Fatalf("dropped %v, want only the stray image", rep.ManifestsDropped)
	}
	for _, d := range []string{amd.manifest.desc.Digest.String(), arm.manifest.desc.Digest.String(), ref.desc.Digest.String()} {
		if st, _, _ := do(t, "GET", ts.URL+"/v2/a/manifests/"+d, nil); st != 200 {
			t.Fatalf("manifest %s after gc: %d", d, st)
		}
	}
	if _, _, body := do(t, "GET", ts.URL+"/v2/a/referrers/"+amd.manifest.desc.Digest.String(), nil); !strings.Contains(string(body), ref.desc.Digest.String()) {
		t.Fatalf("referrers of the amd64 image after gc: %s", body)
	}
}

// gcServer runs a server open for writes over a fresh store.
func gcServer(t *testing.T) (*server.Server, *httptest.Server, string) {
	t.Helper()
	root := t.TempDir()
	srv, err := server.NewServer(server.Options{Root: root, AnonymousWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, ts, root
}
