package registry

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
)

// docker-registry 2.x cannot delete a tag alone: Delete removes the
// manifest and puts the repository's other tags of it back, even when the
// caller gives up once the manifest is gone; and it refuses when an index
// of the repository lists the manifest, which the deletion would break.
func TestDeleteTagWithoutTagDelete(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	img := reg.Seed("r", "a", 1, 10_000)
	for _, tag := range []string{"b", "c"} {
		if err := reg.PushManifest("r", tag, img.Manifest.MediaType, img.ManifestRaw); err != nil {
			t.Fatal(err)
		}
	}
	p := New()
	w := openWriter(t, p, reg, "r", nil)

	// The caller gives up as soon as the manifest is deleted.
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var deleted atomic.Bool
	reg.AddFault(registrytest.Fault{Kind: registrytest.SetHeaders, Match: func(r *http.Request) bool {
		if r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/manifests/sha256:") {
			deleted.Store(true)
			cancel()
		}
		return false
	}})
	if err := w.Delete(dctx, "a"); err != nil && !deleted.Load() {
		t.Fatal(err)
	}
	if _, _, err := reg.GetManifest("r", "a"); err == nil {
		t.Fatal("tag a still there")
	}
	for _, tag := range []string{"b", "c"} {
		if _, _, err := reg.GetManifest("r", tag); err != nil {
			t.Fatalf("tag %s lost with a: %v", tag, err)
		}
	}

	// An index tagged "idx" lists the image tagged "b".
	idx := ocispec.Index{MediaType: manifest.OCIIndex, Manifests: []ocispec.Descriptor{{
		MediaType: img.Manifest.MediaType, Digest: img.Manifest.Digest, Size: img.Manifest.Size,
		Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}}}}
	idx.SchemaVersion = 2
	raw, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.PushManifest("r", "idx", manifest.OCIIndex, raw); err != nil {
		t.Fatal(err)
	}
	err = w.Delete(ctx, "b")
	if !errors.Is(err, core.ErrUnsupported) || !strings.Contains(err.Error(), "index tagged idx") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("deleting a tag whose manifest an index lists: %v", err)
	}
	for _, tag := range []string{"b", "c", "idx"} {
		if _, _, err := reg.GetManifest("r", tag); err != nil {
			t.Fatalf("tag %s gone after a refused delete: %v", tag, err)
		}
	}
}
