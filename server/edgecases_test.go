package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
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

// A manifest PUT refused for a missing blob or child manifest leaves no
// repository behind: tags/list still answers NAME_UNKNOWN and the catalog
// does not list it (distribution does the same).
func TestRejectedManifestCreatesNoRepository(t *testing.T) {
	ts, _ := testServer(t, server.Options{AnonymousWrite: true})
	im := randomImage(t, "amd64", 1)
	for _, c := range []struct {
		repo string
		m    blob
	}{{"ghost/image", im.manifest}, {"ghost/index", indexOf(im)}} {
		st, _, body := do(t, "PUT", ts.URL+"/v2/"+c.repo+"/manifests/v1", c.m.data, "Content-Type", c.m.desc.MediaType)
		if st != http.StatusBadRequest || errCode(body) != "MANIFEST_BLOB_UNKNOWN" {
			t.Fatalf("%s: push without blobs: %d %s", c.repo, st, body)
		}
		if st, _, body := do(t, "GET", ts.URL+"/v2/"+c.repo+"/tags/list", nil); st != http.StatusNotFound || errCode(body) != "NAME_UNKNOWN" {
			t.Fatalf("%s: tags/list after a refused push: %d %s", c.repo, st, body)
		}
	}
	if st, _, body := do(t, "GET", ts.URL+"/v2/_catalog", nil); st != 200 || contains(string(body), "ghost") {
		t.Fatalf("catalog after refused pushes: %d %s", st, body)
	}
	// The repository appears once a push succeeds.
	pushImage(t, ts.URL, "ghost/image", "v1", im)
	if st, _, body := do(t, "GET", ts.URL+"/v2/ghost/image/tags/list", nil); st != 200 || !contains(string(body), `"v1"`) {
		t.Fatalf("tags/list after a push: %d %s", st, body)
	}
}

// gc spares what a push in progress wrote or found within the grace
// period. A client that pushes an index re-PUTs (or HEADs, to skip it) each
// child manifest and re-uploads (or HEADs) each blob: when they are already
// stored, untagged and old, that must count as a use too, or gc
// --delete-untagged drops the child between its PUT and the index's, whose
// PUT then fails with MANIFEST_BLOB_UNKNOWN.
func TestGCSparesWhatAPushJustReused(t *testing.T) {
	const grace = time.Second // generous: the reuse and the gc below must fall within it on a loaded machine
	for _, how := range []string{"put", "head"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			srv, ts, _ := gcServer(t)
			im := randomImage(t, "amd64", 1)
			extra := newBlob("application/octet-stream", randomBytes(2000))
			pushImage(t, ts.URL, "a", im.manifest.desc.Digest.String(), im) // untagged
			pushBlob(t, ts.URL, "a", extra)                                 // orphan for now
			time.Sleep(2 * grace)
			// A new push reuses both.
			if how == "put" {
				pushBlob(t, ts.URL, "a", extra)
				pushImage(t, ts.URL, "a", im.manifest.desc.Digest.String(), im)
			} else {
				for _, u := range []string{"/v2/a/blobs/" + extra.desc.Digest.String(), "/v2/a/manifests/" + im.manifest.desc.Digest.String()} {
					if st, _, _ := do(t, "HEAD", ts.URL+u, nil); st != 200 {
						t.Fatalf("HEAD %s: %d", u, st)
					}
				}
			}
			if _, err := srv.Store().GC(context.Background(), storage.GCOptions{DeleteUntagged: true, Grace: grace}); err != nil {
				t.Fatal(err)
			}
			// The push goes on: an artifact needing the blob, and the index.
			cfg := newBlob(ocispec.MediaTypeEmptyJSON, []byte("{}"))
			pushBlob(t, ts.URL, "a", cfg)
			art, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
				ArtifactType: "application/vnd.example.x", Config: cfg.desc, Layers: []ocispec.Descriptor{extra.desc}})
			pushManifest(t, ts.URL, "a", "art", newBlob(ocispec.MediaTypeImageManifest, art))
			pushManifest(t, ts.URL, "a", "v1", indexOf(im))
		})
	}
}

// containerd, nerdctl and buildkit ask the token endpoint with the OAuth2
// password grant (POST, credentials in the form) whenever they hold
// credentials, and use whatever token a 200 brings. It must authenticate
// the user from the form, and refuse a wrong password.
func TestTokenOAuth2PasswordGrant(t *testing.T) {
	ts, _ := testServer(t, server.Options{HtpasswdFile: htpasswd(t, "alice"), Token: true, TokenTTL: time.Minute})
	oauth := func(form url.Values) (int, string) {
		t.Helper()
		resp, err := http.PostForm(ts.URL+"/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&r)
		return resp.StatusCode, r.AccessToken
	}
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-pw"},
		"service": {"stevedore"}, "scope": {"repository:app:pull,push"}, "client_id": {"containerd-client"}}
	st, tok := oauth(form)
	if st != 200 || tok == "" {
		t.Fatalf("password grant: %d %q", st, tok)
	}
	pushBlob(t, ts.URL, "app", newBlob("", randomBytes(100)), "Authorization", "Bearer "+tok)

	form.Set("password", "wrong")
	if st, tok := oauth(form); st != http.StatusUnauthorized || tok != "" {
		t.Fatalf("password grant with a wrong password: %d %q", st, tok)
	}
	form.Set("grant_type", "refresh_token")
	if st, _ := oauth(form); st != http.StatusBadRequest {
		t.Fatalf("refresh_token grant (none is ever issued): %d", st)
	}
}

// "blobs" is a valid repository name (only a layout's own files are
// reserved, below another name): the catalog lists it and what is under
// it, and gc sweeps it.
func TestRepositoryNamedBlobs(t *testing.T) {
	srv, ts, root := gcServer(t)
	im := randomImage(t, "amd64", 1)
	for _, repo := range []string{"blobs", "blobs/sub", "app"} {
		pushImage(t, ts.URL, repo, "v1", im)
	}
	st, _, body := do(t, "GET", ts.URL+"/v2/_catalog", nil)
	if st != 200 || string(body) != `{"repositories":["app","blobs","blobs/sub"]}` {
		t.Fatalf("catalog: %d %s", st, body)
	}
	orphan := newBlob("", randomBytes(1000))
	pushBlob(t, ts.URL, "blobs", orphan)
	rep, err := srv.Store().GC(context.Background(), storage.GCOptions{Grace: storage.NoGrace})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Repositories != 3 || rep.BlobsUnlinked != 1 {
		t.Fatalf("gc: %+v, want 3 repositories and the orphan of blobs unlinked", rep)
	}
	if _, err := os.Stat(filepath.Join(root, "blobs/blobs/sha256", orphan.desc.Digest.Encoded())); !os.IsNotExist(err) {
		t.Fatalf("orphan blob of repository blobs after gc: %v", err)
	}
	if st, _, _ := do(t, "GET", ts.URL+"/v2/blobs/manifests/v1", nil); st != 200 {
		t.Fatalf("blobs:v1 after gc: %d", st)
	}
}

// One gc run frees the bytes of the blobs whose last links it removes, with
// a grace period too (removing a link changes the change time of the inode
// all its links share, which read as a use kept the blob for another run),
// and a dry run reports the same.
func TestGCFreesInOneRun(t *testing.T) {
	const grace = 500 * time.Millisecond
	srv, ts, root := gcServer(t)
	im := randomImage(t, "amd64", 2)
	for _, repo := range []string{"a", "b"} { // each blob linked twice, shared once
		pushImage(t, ts.URL, repo, "v1", im)
		if st, _, _ := do(t, "DELETE", ts.URL+"/v2/"+repo+"/manifests/v1", nil); st != http.StatusAccepted {
			t.Fatal("untag")
		}
	}
	time.Sleep(2 * grace)
	var size int64
	for _, b := range append([]blob{im.manifest, im.config}, im.layers...) {
		size += b.desc.Size
	}
	o := storage.GCOptions{DeleteUntagged: true, Grace: grace}
	for _, dry := range []bool{true, false} {
		o.DryRun = dry
		rep, err := srv.Store().GC(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		if rep.BlobsUnlinked != 8 || rep.SharedRemoved != 4 || rep.BytesFreed != size {
			t.Fatalf("gc (dry run %v): %+v, want 8 links unlinked, 4 shared blobs and %d bytes freed", dry, rep, size)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(root, ".blobs/sha256")); len(ents) != 0 {
		t.Fatalf("%d shared blobs left after gc", len(ents))
	}
}

// Request methods are any token to net/http: the metrics label a method
// they do not know "other", or every client could add series without bound.
func TestMetricsMethodLabelsAreBounded(t *testing.T) {
	ts, _ := testServer(t, server.Options{AnonymousWrite: true})
	for i := 0; i < 20; i++ {
		do(t, fmt.Sprintf("X%dY", i), ts.URL+"/v2/", nil)
	}
	do(t, "GET", ts.URL+"/v2/", nil)
	_, _, body := do(t, "GET", ts.URL+"/metrics", nil)
	if strings.Contains(string(body), `method="X`) || !strings.Contains(string(body), `method="other",route="ping"`) || !strings.Contains(string(body), `method="GET",route="ping"`) {
		t.Fatalf("metrics:\n%s", body)
	}
}
