package manifest

import (
	"context"
	"fmt"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
)

// ReferrersAmong keeps the manifests whose subject is the one asked for, of
// the artifact type asked for, and passes over entries it cannot read as
// manifests (missing, over the manifest size limit) instead of failing: one
// bad entry of a layout hid every image's referrers.
func TestReferrersAmong(t *testing.T) {
	subject := digest.FromString("subject")
	blobs := map[digest.Digest][]byte{}
	entry := func(raw string) ocispec.Descriptor {
		d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(raw), Size: int64(len(raw))}
		blobs[d.Digest] = []byte(raw)
		return d
	}
	sig := entry(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"a/sig","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":1},"annotations":{"k":"v"}}`, digest.FromString("{}"), subject))
	sbom := entry(fmt.Sprintf(`{"schemaVersion":2,"config":{"mediaType":"a/sbom","digest":"%s","size":2},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":1}}`, digest.FromString("{}"), subject))
	other := entry(fmt.Sprintf(`{"schemaVersion":2,"config":{"mediaType":"a/sig","digest":"%s","size":2},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":1}}`, digest.FromString("{}"), digest.FromString("another")))
	plain := entry(`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2},"layers":[]}`)
	missing := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("missing"), Size: 3}
	huge := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("huge"), Size: 5 << 20}
	read := func(_ context.Context, d ocispec.Descriptor) ([]byte, error) {
		if d.Digest == huge.Digest {
			return nil, fmt.Errorf("over the limit: %w", core.ErrTooLarge)
		}
		if b, ok := blobs[d.Digest]; ok {
			return b, nil
		}
		return nil, fmt.Errorf("blob %s: %w", d.Digest, core.ErrNotFound)
	}
	entries := []ocispec.Descriptor{plain, huge, sig, missing, other, sbom, sig}
	got, err := ReferrersAmong(context.Background(), entries, subject, "", read)
	if err != nil || len(got) != 2 || got[0].Digest != sig.Digest || got[1].Digest != sbom.Digest {
		t.Fatalf("all referrers: %+v, %v; want the signature and the SBOM once each", got, err)
	}
	if got[0].ArtifactType != "a/sig" || got[0].Annotations["k"] != "v" || got[1].ArtifactType != "a/sbom" || got[1].MediaType != ocispec.MediaTypeImageManifest {
		t.Fatalf("descriptors %+v: want artifact types, annotations and media types", got)
	}
	got, err = ReferrersAmong(context.Background(), entries, subject, "a/sbom", read)
	if err != nil || len(got) != 1 || got[0].Digest != sbom.Digest {
		t.Fatalf("SBOMs: %+v, %v", got, err)
	}
	broken := func(context.Context, ocispec.Descriptor) ([]byte, error) { return nil, fmt.Errorf("disk on fire") }
	if _, err := ReferrersAmong(context.Background(), entries, subject, "", broken); err == nil {
		t.Fatal("a read error that is not a missing or oversized manifest was passed over")
	}
}
