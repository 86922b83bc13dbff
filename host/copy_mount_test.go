package host_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/plugins/docker/registry"
)

// A copy to another repository of the same registry mounts every blob,
// one request each: no HEAD first (a mount answers whether or not the
// blob is there already), no byte moved. A mount the registry refuses
// falls back to checking and copying.
func TestCopyWithinRegistryMountsFirst(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	img := reg.Seed("a/src", "v1", 3, 300_000)
	h, opts := dockerHost(t, registry.New())
	src := "docker://" + reg.Ref("a/src") + ":v1"

	reg.ResetStats()
	res, err := h.Copy(ctx, src, "docker://"+reg.Ref("b/dst")+":v1", opts)
	if err != nil {
		t.Fatal(err)
	}
	n := len(img.Blobs)
	st := reg.Stats()
	blobHeads := 0
	for _, r := range reg.Requests() {
		if r.Method == http.MethodHead && strings.Contains(r.Path, "/blobs/") {
			blobHeads++
		}
	}
	if res.BlobsMounted != n || st.Mounts != n || st.MountsCreated != n || blobHeads != 0 || st.BlobUploadBytes != 0 || st.BlobDownloadBytes != 0 {
		t.Fatalf("mounted %d (want %d); registry saw %d mounts, %d created, %d blob HEADs (want 0), %d bytes up, %d down (want 0)",
			res.BlobsMounted, n, st.Mounts, st.MountsCreated, blobHeads, st.BlobUploadBytes, st.BlobDownloadBytes)
	}
	for d := range img.Blobs {
		if ok, err := reg.HasBlob("b/dst", d); !ok || err != nil {
			t.Fatalf("blob %s at the destination: %v %v", d, ok, err)
		}
	}

	// The registry refuses every mount (it opens an upload instead): each
	// blob is checked, then copied.
	reg.AddFault(registrytest.Fault{Kind: registrytest.Respond, Status: http.StatusAccepted,
		Header: http.Header{"Location": {"/v2/c/dst/blobs/uploads/refused"}},
		Match: func(r *http.Request) bool {
			return r.Method == http.MethodPost && r.URL.Query().Get("mount") != ""
		}})
	reg.ResetStats()
	res, err = h.Copy(ctx, src, "docker://"+reg.Ref("c/dst")+":v1", opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.BlobsMounted != 0 || res.BlobsCopied != n {
		t.Fatalf("with mounts refused: %d mounted, %d copied; want 0, %d", res.BlobsMounted, res.BlobsCopied, n)
	}
	if raw, _, err := reg.GetManifest("c/dst", "v1"); err != nil || string(raw) != string(img.ManifestRaw) {
		t.Fatalf("manifest at the destination: %v", err)
	}
}
