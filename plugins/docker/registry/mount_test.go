package registry

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
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
	// is kept for the blob's upload (TestRefusedMountKeepsUpload), and the
	// mount reports false. Unused, it is cancelled when the endpoint
	// closes.
	_, missing := randomBlob(t, 100)
	reg.ResetStats()
	ok, err := dst.MountBlob(ctx, missing, reg.Ref("a/src"))
	if err != nil || ok {
		t.Fatalf("mount of a missing blob: %v %v, want false, nil", ok, err)
	}
	if reqs := reg.Requests(); len(reqs) != 1 || !reqs[0].IsMount() || reqs[0].Status != http.StatusAccepted {
		for _, r := range reqs {
			t.Logf("%s %s?%s -> %d", r.Method, r.Path, r.RawQuery, r.Status)
		}
		t.Fatal("want one 202 mount, the session kept")
	}
	reg.ResetStats()
	if err := dst.Close(ctx); err != nil {
		t.Fatal(err)
	}
	reqs := reg.Requests()
	// (distribution wants the delete action to cancel an upload: the DELETE
	// may be answered 401 once while a token with it is fetched.)
	if last := reqs[len(reqs)-1]; last.Method != http.MethodDelete || last.Status != http.StatusNoContent {
		for _, r := range reqs {
			t.Logf("%s %s?%s -> %d", r.Method, r.Path, r.RawQuery, r.Status)
		}
		t.Fatal("want Close to DELETE the unused session (204)")
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

// A mount the registry refuses by opening an upload (the source lacks the
// blob; ECR with mounts off does it for any) leaves that upload to the
// bytes that follow: one POST a blob, no abandoned session, as crane does.
// One never used is abandoned when the endpoint closes.
func TestRefusedMountKeepsUpload(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	p := testPlugin()
	dst := openWriter(t, p, reg, "dst", nil)
	b, desc := randomBlob(t, 5000)
	reg.ResetStats()
	if ok, err := dst.MountBlob(ctx, desc, reg.Ref("empty")); err != nil || ok {
		t.Fatalf("mount from a repository without the blob: %v %v", ok, err)
	}
	if err := dst.PutBlob(ctx, desc, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	var seq []string
	for _, r := range reg.Requests() {
		seq = append(seq, r.Method)
	}
	if got := strings.Join(seq, " "); got != "POST PUT" {
		t.Fatalf("requests %q, want the mount's POST, then the PUT into its upload", got)
	}
	if ok, err := reg.HasBlob("dst", desc.Digest); err != nil || !ok {
		t.Fatalf("blob not there: %v", err)
	}

	// Refused and never used: Close abandons the upload.
	_, other := randomBlob(t, 10)
	if ok, err := dst.MountBlob(ctx, other, reg.Ref("empty")); err != nil || ok {
		t.Fatalf("second mount: %v %v", ok, err)
	}
	reg.ResetStats()
	if err := dst.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := reg.Stats(); st.ByMethod["DELETE"] != 1 {
		t.Fatalf("Close sent %v, want one DELETE of the unused upload", st.ByMethod)
	}
}
