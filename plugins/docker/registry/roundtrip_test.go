package registry

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
)

// TestRoundTrip reads an image seeded in the registry, pushes it to another
// repository, reads it back and deletes it, in every registry mode.
func TestRoundTrip(t *testing.T) {
	modes := []struct {
		name string
		opts registrytest.Options
	}{
		{"http", registrytest.Options{}},
		{"tls-cert-dir", registrytest.Options{TLS: true}},
		{"basic", registrytest.Options{Auth: registrytest.AuthBasic}},
		{"token-tls", registrytest.Options{TLS: true, Auth: registrytest.AuthToken}},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ctx := context.Background()
			reg := registrytest.Start(t, m.opts)
			img := reg.Seed("src/app", "v1", 3, 100_000)
			p := testPlugin()

			src := openReader(t, p, reg, "src/app", nil)
			reg.ResetStats()
			desc, err := src.Resolve(ctx, "v1")
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range reg.Requests() {
				if r.Method == http.MethodGet && strings.Contains(r.Path, "/manifests/") {
					t.Fatal("Resolve fetched the manifest although HEAD told everything")
				}
			}
			if desc.Digest != img.Manifest.Digest || desc.Size != img.Manifest.Size || desc.MediaType != img.Manifest.MediaType {
				t.Fatalf("resolved %+v, want %+v", desc, img.Manifest)
			}
			raw, err := src.GetManifest(ctx, desc)
			if err != nil || !bytes.Equal(raw, img.ManifestRaw) {
				t.Fatalf("manifest: %v", err)
			}
			for _, l := range img.Layers {
				b, err := readBlob(ctx, src, l)
				if err != nil || !bytes.Equal(b, img.Blobs[l.Digest]) {
					t.Fatalf("blob %s: %v", l.Digest, err)
				}
			}
			if tags, err := src.ListTags(ctx); err != nil || !slices.Equal(tags, []string{"v1"}) {
				t.Fatalf("tags %v, %v", tags, err)
			}
			byDigest, err := src.Resolve(ctx, img.Manifest.Digest.String())
			if err != nil || byDigest.Digest != img.Manifest.Digest {
				t.Fatalf("resolve by digest: %+v, %v", byDigest, err)
			}

			reg.ResetStats()
			dst := openWriter(t, p, reg, "dst/app", nil)
			pushImage(t, dst, img, "v2")
			got, ct, err := reg.GetManifest("dst/app", "v2")
			if err != nil || !bytes.Equal(got, img.ManifestRaw) || ct != img.Manifest.MediaType {
				t.Fatalf("pushed manifest: %v (%s)", err, ct)
			}
			for d := range img.Blobs {
				if ok, err := reg.HasBlob("dst/app", d); err != nil || !ok {
					t.Fatalf("blob %s not pushed: %v", d, err)
				}
			}
			if m.opts.Auth == registrytest.AuthToken {
				// One token for reading and one for writing: reused across
				// every request of an endpoint.
				n, scopes := reg.TokenRequests()
				if n > 2 {
					t.Fatalf("%d token requests (scopes %q), want 2", n, scopes)
				}
				if !slices.Contains(scopes, "repository:dst/app:pull,push") {
					t.Fatalf("scopes %q lack push on dst/app", scopes)
				}
			}
			if d, err := dst.Resolve(ctx, "v2"); err != nil || d.Digest != img.Manifest.Digest {
				t.Fatalf("resolve pushed: %+v %v", d, err)
			}

			if err := dst.Delete(ctx, "v2"); err != nil {
				t.Fatal(err)
			}
			_, err = dst.Resolve(ctx, "v2")
			mustIs(t, err, core.ErrNotFound)
			if !strings.Contains(err.Error(), "registry "+reg.Addr+", repository dst/app") {
				t.Fatalf("error does not name registry and repository: %v", err)
			}
		})
	}
}
