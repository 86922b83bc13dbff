package host_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
	"github.com/stevedore-oci/stevedore/plugins/docker/registry"
	"github.com/stevedore-oci/stevedore/plugins/oci-layout/ocilayout"
)

// An upload PATCH cut half-way cannot be resumed on docker-registry (it
// drops the session): the host starts that blob again, and the copy
// succeeds, whether the host streams the blob or the docker plugin uploads
// the layout's file itself.
func TestCopyRestartsBrokenUpload(t *testing.T) {
	for _, streamOnly := range []bool{true, false} {
		t.Run(fmt.Sprintf("stream-only=%v", streamOnly), func(t *testing.T) {
			ctx := context.Background()
			reg := registrytest.Start(t, registrytest.Options{})
			img := transporttest.RandomImage(7, 2, 300<<10)
			spy := newSpy("")
			_, src, _ := stageFixture(t, spy, img)
			dp := registry.New()
			dp.MonolithicMax = 64 << 10 // chunked uploads of 64 KiB
			dp.ChunkSize = 64 << 10
			dp.RetryBase = 10 * time.Millisecond
			dp.RetryMax = 50 * time.Millisecond
			h, err := host.New(host.Options{SearchPath: []string{t.TempDir()}, InProcess: []pluginapi.Plugin{ocilayout.New(), dp}})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			// The first upload PATCH breaks after 10 000 bytes.
			reg.AddFault(registrytest.Fault{Kind: registrytest.CutRequest, Match: registrytest.MatchUploadPatch(), Times: 1, At: 10_000})
			res, err := h.Copy(ctx, "oci:"+src+":v1", "docker://"+reg.Ref("r")+":v1", host.CopyOptions{
				StreamOnly: streamOnly, DstOptions: map[string]string{"tls-verify": "false"},
			})
			if err != nil {
				t.Fatalf("copy: %v", err)
			}
			if res.Descriptor.Digest != img.Manifest.Descriptor.Digest {
				t.Fatalf("copied %s, want %s", res.Descriptor.Digest, img.Manifest.Descriptor.Digest)
			}
			var cut, sessions int
			for _, r := range reg.Requests() {
				if r.Fault == registrytest.CutRequest {
					cut++
				}
				if r.Method == http.MethodPost && strings.Contains(r.Path, "/blobs/uploads/") {
					sessions++
				}
			}
			if cut != 1 || sessions <= len(img.Blobs()) {
				t.Fatalf("%d cut PATCHes, %d upload sessions for %d blobs: want one cut and a restarted upload", cut, sessions, len(img.Blobs()))
			}
			// Every blob is there, under the manifest the registry accepted.
			pulled := filepath.Join(t.TempDir(), "back")
			if _, err := h.Copy(ctx, "docker://"+reg.Ref("r")+":v1", "oci:"+pulled+":v1", host.CopyOptions{SrcOptions: map[string]string{"tls-verify": "false"}}); err != nil {
				t.Fatalf("pull back: %v", err)
			}
			checkCopied(t, pulled, img)
		})
	}
}
