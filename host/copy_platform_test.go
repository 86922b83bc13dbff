package host_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/ref"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/imagegen"
)

// --platform on an image that is no index was ignored: asking for
// linux/arm64 of a linux/amd64 image copied linux/amd64. A copy now refuses
// an image that is not for every platform asked for, naming both, even
// when the destination holds it already; a sync fails one with none of
// them, as it fails an index with none. skopeo's --override-* (pick only)
// and an image whose config names no platform copy as before.
func TestPlatformOfSingleImage(t *testing.T) {
	ctx := context.Background()
	src, s, img := sourceLayout(t, imagegen.Spec{Seed: 31, Layers: []imagegen.Layer{{Size: 1 << 10}}})
	art := writeReferrer(t, s, img.Manifest, "sbom")
	if err := s.Tag(ctx, art, "art"); err != nil {
		t.Fatal(err)
	}
	amd64 := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := ocispec.Platform{OS: "linux", Architecture: "arm64"}
	h := newSyncHost(t)
	dst := filepath.Join(t.TempDir(), "dst")

	for _, tc := range []struct {
		plats []ocispec.Platform
		want  string
	}{
		{[]ocispec.Platform{arm64}, "image " + img.Manifest.Digest.String() + " is for linux/amd64, not linux/arm64 "},
		{[]ocispec.Platform{amd64, arm64}, "is for linux/amd64, not linux/arm64 "},
	} {
		_, err := h.Copy(ctx, "oci:"+src+":v1", "oci:"+dst+":v1", host.CopyOptions{Platforms: tc.plats})
		if !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "use --platform linux/amd64 or none") {
			t.Fatalf("copy of a linux/amd64 image for %v: %v, want an error saying %q", tc.plats, err, tc.want)
		}
	}
	if _, err := h.Copy(ctx, "oci:"+src+":v1", "oci:"+dst+":v1", host.CopyOptions{Platforms: []ocispec.Platform{amd64}}); err != nil {
		t.Fatalf("copy for its own platform: %v", err)
	}
	// Held at the destination: still refused, not up to date.
	if _, err := h.Copy(ctx, "oci:"+src+":v1", "oci:"+dst+":v1", host.CopyOptions{Platforms: []ocispec.Platform{arm64}}); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("copy to a destination holding it, for linux/arm64: %v", err)
	}
	res, err := h.Copy(ctx, "oci:"+src+":v1", "oci:"+dst+":v2", host.CopyOptions{Platforms: []ocispec.Platform{arm64}, PlatformsPickOnly: true})
	if err != nil || res.Descriptor.Digest != img.Manifest.Digest {
		t.Fatalf("--override-arch arm64 of a linux/amd64 image: %v, %v", res, err)
	}
	if _, err := h.Copy(ctx, "oci:"+src+":art", "oci:"+dst+":art", host.CopyOptions{Platforms: []ocispec.Platform{arm64}}); err != nil {
		t.Fatalf("an artifact (no platform) with --platform: %v", err)
	}

	// An arm image whose config names no variant is arm/v7, as matched and
	// as said.
	armSrc, _, armImg := sourceLayout(t, imagegen.Spec{Seed: 32, Platform: ocispec.Platform{OS: "linux", Architecture: "arm"}, Layers: []imagegen.Layer{{Size: 1 << 10}}})
	_, err = h.Copy(ctx, "oci:"+armSrc+":v1", "oci:"+dst+":arm6", host.CopyOptions{Platforms: []ocispec.Platform{{OS: "linux", Architecture: "arm", Variant: "v6"}}})
	if want := "image " + armImg.Manifest.Digest.String() + " is for linux/arm/v7, not linux/arm/v6 "; err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "use --platform linux/arm/v7 or none") {
		t.Fatalf("copy of a linux/arm image for linux/arm/v6: %v, want an error saying %q", err, want)
	}
	if _, err := h.Copy(ctx, "oci:"+armSrc+":v1", "oci:"+dst+":arm", host.CopyOptions{Platforms: []ocispec.Platform{{OS: "linux", Architecture: "arm", Variant: "v7"}}}); err != nil {
		t.Fatalf("copy of a linux/arm image for linux/arm/v7: %v", err)
	}

	// sync: one of the platforms is enough; none fails the image.
	sync := func(plats ...ocispec.Platform) (*host.SyncReport, error) {
		srcEP, err := ref.Parse("oci:" + src + ":v1")
		if err != nil {
			t.Fatal(err)
		}
		dstEP, err := ref.Parse("oci:" + filepath.Join(t.TempDir(), "mirror") + ":v1")
		if err != nil {
			t.Fatal(err)
		}
		return h.Sync(ctx, []host.SyncJob{{Kind: host.SyncImage, Source: srcEP, Target: dstEP, Platforms: plats}}, host.SyncOptions{})
	}
	if rep, err := sync(amd64, arm64); err != nil || rep.Copied != 1 {
		t.Fatalf("sync for linux/amd64 and linux/arm64: %+v, %v", rep, err)
	}
	rep, err := sync(arm64)
	if err == nil || rep.Failed != 1 || !strings.Contains(err.Error(), "is for linux/amd64, not linux/arm64 ") {
		t.Fatalf("sync for linux/arm64: %+v, %v", rep, err)
	}
}
