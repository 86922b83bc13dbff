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

// A ReferrerCache reads each manifest once however many subjects are asked
// about, answers as ReferrersAmong does, and reads a missing manifest again
// on each call (it may be written since).
func TestReferrerCacheReadsEachManifestOnce(t *testing.T) {
	blobs := map[digest.Digest][]byte{}
	var entries []ocispec.Descriptor
	subjects := make([]digest.Digest, 20)
	for i := range subjects {
		subjects[i] = digest.FromString(fmt.Sprint("subject ", i))
		img := fmt.Sprintf(`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"%s","size":2},"layers":[],"annotations":{"n":"%d"}}`, digest.FromString("{}"), i)
		ref := fmt.Sprintf(`{"schemaVersion":2,"artifactType":"a/sig","config":{"mediaType":"a/b","digest":"%s","size":2},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":1}}`, digest.FromString("{}"), subjects[i])
		for _, raw := range []string{img, ref} {
			d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(raw), Size: int64(len(raw))}
			blobs[d.Digest] = []byte(raw)
			entries = append(entries, d)
		}
	}
	late := fmt.Sprintf(`{"schemaVersion":2,"config":{"mediaType":"a/late","digest":"%s","size":2},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":1}}`, digest.FromString("{}"), subjects[0])
	lateDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(late), Size: int64(len(late))}
	entries = append(entries, lateDesc)
	reads := map[digest.Digest]int{}
	read := func(_ context.Context, d ocispec.Descriptor) ([]byte, error) {
		reads[d.Digest]++
		if b, ok := blobs[d.Digest]; ok {
			return b, nil
		}
		return nil, fmt.Errorf("blob %s: %w", d.Digest, core.ErrNotFound)
	}
	var c ReferrerCache
	for round := range 2 {
		for i, s := range subjects {
			got, err := c.Among(context.Background(), entries, s, "", read)
			want, werr := ReferrersAmong(context.Background(), entries, s, "", func(ctx context.Context, d ocispec.Descriptor) ([]byte, error) {
				if b, ok := blobs[d.Digest]; ok {
					return b, nil
				}
				return nil, core.ErrNotFound
			})
			wantN := 1
			if round == 1 && i == 0 {
				wantN = 2 // and the late one
			}
			if err != nil || werr != nil || len(got) != len(want) || len(got) != wantN || got[0].Digest != entries[2*i+1].Digest || got[0].ArtifactType != "a/sig" {
				t.Fatalf("round %d, subject %d: %+v %v, uncached %+v", round, i, got, err, want)
			}
		}
		blobs[lateDesc.Digest] = []byte(late) // written after the first round
	}
	for d, n := range reads {
		want := 1
		if d == lateDesc.Digest {
			want = len(subjects) + 1 // missing: asked again each time, then once
		}
		if n != want {
			t.Errorf("%s read %d times, want %d", d, n, want)
		}
	}
}
