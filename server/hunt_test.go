package server_test

import (
	"net/http"
	"testing"

	"github.com/stevedore-oci/stevedore/server"
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
