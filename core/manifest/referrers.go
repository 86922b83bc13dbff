package manifest

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
)

// head is the part of a manifest or index ReferrersAmong looks at.
type head struct {
	MediaType    string              `json:"mediaType"`
	ArtifactType string              `json:"artifactType"`
	Config       *ocispec.Descriptor `json:"config"`
	Subject      *ocispec.Descriptor `json:"subject"`
	Annotations  map[string]string   `json:"annotations"`
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
		var h head
		if json.Unmarshal(raw, &h) != nil || h.Subject == nil || h.Subject.Digest != subject {
			continue
		}
		at := h.ArtifactType
		if at == "" && h.Config != nil {
			at = h.Config.MediaType
		}
		if artifactType != "" && at != artifactType {
			continue
		}
		mt := h.MediaType
		if mt == "" {
			mt = entry.MediaType
		}
		out = append(out, ocispec.Descriptor{MediaType: mt, Digest: entry.Digest, Size: entry.Size, ArtifactType: at, Annotations: h.Annotations})
	}
	return out, nil
}
