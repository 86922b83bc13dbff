package manifest

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
)

// Referrer is what the distribution spec's referrers API says of a manifest:
// the subject it refers to and the fields of its descriptor there.
type Referrer struct {
	Subject digest.Digest // "" when it names none
	// MediaType is the manifest's own ("" when it names none).
	MediaType string
	// ArtifactType is the manifest's, else its config's media type.
	ArtifactType string
	Annotations  map[string]string
}

// ReadReferrer reads those fields from a manifest's or index's bytes; ok is
// false when they are not a JSON object.
func ReadReferrer(raw []byte) (r Referrer, ok bool) {
	var h struct {
		MediaType    string              `json:"mediaType"`
		ArtifactType string              `json:"artifactType"`
		Config       *ocispec.Descriptor `json:"config"`
		Subject      *ocispec.Descriptor `json:"subject"`
		Annotations  map[string]string   `json:"annotations"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return Referrer{}, false
	}
	r = Referrer{MediaType: h.MediaType, ArtifactType: h.ArtifactType, Annotations: h.Annotations}
	if r.ArtifactType == "" && h.Config != nil {
		r.ArtifactType = h.Config.MediaType
	}
	if h.Subject != nil {
		r.Subject = h.Subject.Digest
	}
	return r, true
}

// ReferrersAmong finds the referrers of subject among entries (an image
// layout's index.json): the manifests whose subject it is, read with read,
// of artifactType when one is given. The descriptors carry the artifact
// type (the manifest's, or its config's media type) and the manifest's
// annotations, as the distribution spec's referrers API gives them. An
// entry whose manifest is missing, too large to be a manifest or not JSON
// refers to nothing: one bad entry does not hide every image's referrers.
func ReferrersAmong(ctx context.Context, entries []ocispec.Descriptor, subject digest.Digest, artifactType string, read func(context.Context, ocispec.Descriptor) ([]byte, error)) ([]ocispec.Descriptor, error) {
	seen := map[digest.Digest]bool{}
	out := []ocispec.Descriptor{}
	for _, entry := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if seen[entry.Digest] || entry.Size < 0 {
			continue
		}
		seen[entry.Digest] = true
		raw, err := read(ctx, entry)
		if errors.Is(err, core.ErrNotFound) || errors.Is(err, core.ErrTooLarge) {
			continue
		}
		if err != nil {
			return nil, err
		}
		r, ok := ReadReferrer(raw)
		if !ok || r.Subject != subject || (artifactType != "" && r.ArtifactType != artifactType) {
			continue
		}
		mt := r.MediaType
		if mt == "" {
			mt = entry.MediaType
		}
		out = append(out, ocispec.Descriptor{MediaType: mt, Digest: entry.Digest, Size: entry.Size, ArtifactType: r.ArtifactType, Annotations: r.Annotations})
	}
	return out, nil
}
