package manifest

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"sync"

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
	var c ReferrerCache
	return c.Among(ctx, entries, subject, artifactType, read)
}

// ReferrerCache is ReferrersAmong that remembers what each manifest refers
// to, by digest (what a digest names never changes): listing the referrers
// of each of many subjects reads and parses each manifest once, not once
// per subject (a sync --referrers of 2000 tags from a layout read 4 million
// manifests). It keeps the subject, media and artifact types and
// annotations of the manifests that name a subject, and only the digest of
// the others. The zero value is ready; it is safe for concurrent use.
type ReferrerCache struct {
	mu sync.RWMutex
	m  map[digest.Digest]*Referrer // nil: refers to nothing
}

// Among is ReferrersAmong, reading only the manifests c does not know.
func (c *ReferrerCache) Among(ctx context.Context, entries []ocispec.Descriptor, subject digest.Digest, artifactType string, read func(context.Context, ocispec.Descriptor) ([]byte, error)) ([]ocispec.Descriptor, error) {
	out := []ocispec.Descriptor{}
	var seen map[digest.Digest]bool
	err := c.each(ctx, entries, read, func(entry ocispec.Descriptor, r *Referrer) {
		if r.Subject == subject && (artifactType == "" || r.ArtifactType == artifactType) && !seen[entry.Digest] {
			if seen == nil {
				seen = map[digest.Digest]bool{}
			}
			seen[entry.Digest] = true
			out = append(out, r.descriptor(entry))
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// BySubject is Among for every subject at once: the referrers among
// entries, by the subject they name, of any artifact type.
func (c *ReferrerCache) BySubject(ctx context.Context, entries []ocispec.Descriptor, read func(context.Context, ocispec.Descriptor) ([]byte, error)) (map[digest.Digest][]ocispec.Descriptor, error) {
	out := map[digest.Digest][]ocispec.Descriptor{}
	seen := map[digest.Digest]bool{}
	err := c.each(ctx, entries, read, func(entry ocispec.Descriptor, r *Referrer) {
		if !seen[entry.Digest] {
			seen[entry.Digest] = true
			out[r.Subject] = append(out[r.Subject], r.descriptor(entry))
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// descriptor is the referrers API's descriptor of entry, which r describes.
func (r *Referrer) descriptor(entry ocispec.Descriptor) ocispec.Descriptor {
	mt := r.MediaType
	if mt == "" {
		mt = entry.MediaType
	}
	return ocispec.Descriptor{MediaType: mt, Digest: entry.Digest, Size: entry.Size, ArtifactType: r.ArtifactType, Annotations: maps.Clone(r.Annotations)}
}

// each calls f for each entry that names a subject (an entry listed twice,
// twice: callers keep one).
func (c *ReferrerCache) each(ctx context.Context, entries []ocispec.Descriptor, read func(context.Context, ocispec.Descriptor) ([]byte, error), f func(ocispec.Descriptor, *Referrer)) error {
	for i, entry := range entries {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if entry.Size < 0 {
			continue
		}
		r, known := c.lookup(entry.Digest)
		if !known {
			raw, err := read(ctx, entry)
			switch {
			case errors.Is(err, core.ErrNotFound):
				continue // may be written later: not remembered
			case errors.Is(err, core.ErrTooLarge):
			case err != nil:
				return err
			default:
				if rr, ok := ReadReferrer(raw); ok && rr.Subject != "" {
					r = &rr
				}
			}
			c.remember(entry.Digest, r)
		}
		if r != nil {
			f(entry, r)
		}
	}
	return nil
}

func (c *ReferrerCache) lookup(d digest.Digest) (*Referrer, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.m[d]
	return r, ok
}

func (c *ReferrerCache) remember(d digest.Digest, r *Referrer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[digest.Digest]*Referrer{}
	}
	c.m[d] = r
}
