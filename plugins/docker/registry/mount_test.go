package registry

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/stevedore-oci/stevedore/internal/registrytest"
)

// TestMount copies an image between repositories of one registry with
// cross-repository mounts: no blob byte moves.
func TestMount(t *testing.T) {
	ctx := context.Background()
	// Token auth: the mount needs pull on the source in the same token.
	// OtherUsername may push to b/* but not read a/src.
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthToken, Grant: func(user, repo string, req []string) []string {
		if user == "" || (user == registrytest.OtherUsername && repo == "a/src") {
			return nil
		}
		return req
	}})
	img := reg.Seed("a/src", "v1", 3, 300_000)
	p := testPlugin()
	dst := openWriter(t, p, reg, "b/dst", nil)

	reg.ResetStats()
	for _, l := range append(img.Layers, img.Config) {
		ok, err := dst.MountBlob(ctx, l, reg.Ref("a/src"))
		if err != nil || !ok {
			t.Fatalf("mount %s: %v %v", l.Digest, ok, err)
		}
	}
	if err := dst.PutManifest(ctx, img.Manifest, img.ManifestRaw, "v1"); err != nil {
		t.Fatal(err)
	}
	st := reg.Stats()
	if st.MountsCreated != 4 || st.Uploads != 0 || st.BlobUploadBytes != 0 || st.BlobDownloadBytes != 0 {
		t.Fatalf("stats %+v: want 4 mounts created and no blob bytes", st)
	}
	_, scopes := reg.TokenRequests()
	if !slices.Contains(scopes, "repository:a/src:pull repository:b/dst:pull,push") {
		t.Fatalf("no token asked for pull on the mount source: %q", scopes)
	}
	for d := range img.Blobs {
		if ok, _ := reg.HasBlob("b/dst", d); !ok {
			t.Fatalf("blob %s not mounted", d)
		}
	}

	// A blob the source lacks: the registry opens an upload instead, which
	// is cancelled, and the mount reports false.
	_, missing := randomBlob(t, 100)
	reg.ResetStats()
	ok, err := dst.MountBlob(ctx, missing, reg.Ref("a/src"))
	if err != nil || ok {
		t.Fatalf("mount of a missing blob: %v %v, want false, nil", ok, err)
	}
	reqs := reg.Requests()
	// (distribution wants the delete action to cancel an upload: the DELETE
	// may be answered 401 once while a token with it is fetched.)
	last := reqs[len(reqs)-1]
	if !reqs[0].IsMount() || reqs[0].Status != http.StatusAccepted || last.Method != http.MethodDelete || last.Status != http.StatusNoContent {
		for _, r := range reqs {
			t.Logf("%s %s?%s -> %d", r.Method, r.Path, r.RawQuery, r.Status)
		}
		t.Fatal("want a 202 mount then a 204 DELETE of the session")
	}

	// Another registry: no request at all.
	reg.ResetStats()
	if ok, err := dst.MountBlob(ctx, img.Layers[0], "example.com/a/src"); ok || err != nil {
		t.Fatalf("cross-registry mount: %v %v", ok, err)
	}
	if n := len(reg.Requests()); n != 0 {
		t.Fatalf("cross-registry mount sent %d requests", n)
	}

	// A user who may not read the source: the token lacks the source scope,
	// the registry starts an upload, the mount reports false.
	other := openWriter(t, p, reg, "b/other", map[string]string{"creds": registrytest.OtherUsername + ":" + registrytest.OtherPassword})
	if ok, err := other.MountBlob(ctx, img.Layers[0], reg.Ref("a/src")); ok || err != nil {
		t.Fatalf("mount without source access: %v %v, want false, nil", ok, err)
	}
}
