package host_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/plugins/docker/registry"
)

// A copy between registries to one that caps upload PATCHes (GHCR: 4 MiB,
// here 64 KiB): the first chunk of the layer is refused after the
// registry read it, past what the plugin keeps to resend, so the upload
// fails as unavailable; the copy engine starts the blob again, and the
// plugin, which learned the cap, sends chunks under it. One refusal, and
// the image arrives whole.
func TestCopyToRegistryWithChunkCap(t *testing.T) {
	ctx := context.Background()
	src := registrytest.Start(t, registrytest.Options{})
	img := src.Seed("app", "v1", 1, 1<<20)
	dst := registrytest.Start(t, registrytest.Options{})
	patch := registrytest.MatchUploadPatch()
	dst.AddFault(registrytest.Fault{
		Kind: registrytest.Respond, Status: http.StatusRequestedRangeNotSatisfiable, Drain: true,
		Match: func(r *http.Request) bool { return patch(r) && r.ContentLength > 64<<10 },
		Body:  `{"errors":[{"code":"REQUESTED_RANGE_NOT_SATISFIABLE","message":"the request body is too large and exceeds the maximum permissible limit of 0.06MiB"}]}`,
	})

	p := registry.New()
	p.MonolithicMax, p.ChunkSize, p.ReplayWindow = 256<<10, 256<<10, 16<<10
	h, opts := dockerHost(t, p)
	res, err := h.Copy(ctx, "docker://"+src.Ref("app")+":v1", "docker://"+dst.Ref("app")+":v1", opts)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, r := range dst.Requests() {
		if r.Method == http.MethodPatch && r.Status == http.StatusRequestedRangeNotSatisfiable {
			refused++
		}
	}
	if refused != 1 || res.BlobsCopied != len(img.Blobs) {
		t.Fatalf("%d PATCHes refused, %d blobs copied; want 1 and %d", refused, res.BlobsCopied, len(img.Blobs))
	}
	if raw, _, err := dst.GetManifest("app", "v1"); err != nil || string(raw) != string(img.ManifestRaw) {
		t.Fatalf("manifest at the destination: %v", err)
	}
	for d := range img.Blobs {
		if ok, err := dst.HasBlob("app", d); err != nil || !ok {
			t.Fatalf("blob %s at the destination: %v %v", d, ok, err)
		}
	}
}
