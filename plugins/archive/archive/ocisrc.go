package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/manifest"
)

// maxIndexSize caps index.json and manifest.json read into memory.
const maxIndexSize = 64 << 20

const containerdNameAnnotation = "io.containerd.image.name"

// ociSource reads an oci-archive.
type ociSource struct {
	t     *tarFile
	index ocispec.Index
	refs  manifest.ReferrerCache // Referrers
}

func openOCISource(ctx context.Context, path string) (*ociSource, error) {
	t, err := openTar(ctx, path)
	if err != nil {
		return nil, err
	}
	idx, err := readLayoutIndex(t)
	if err != nil {
		t.close()
		return nil, err
	}
	return &ociSource{t: t, index: idx}, nil
}

// readLayoutIndex checks oci-layout and reads index.json.
func readLayoutIndex(t *tarFile) (ocispec.Index, error) {
	b, err := t.readFile(ocispec.ImageLayoutFile, 64<<10)
	if err != nil {
		return ocispec.Index{}, fmt.Errorf("%w (not an OCI layout archive)", err)
	}
	var l ocispec.ImageLayout
	if json.Unmarshal(b, &l) != nil || l.Version != ocispec.ImageLayoutVersion {
		return ocispec.Index{}, fmt.Errorf("archive %s: %s: unsupported or malformed: %w", t.path, ocispec.ImageLayoutFile, core.ErrUnsupported)
	}
	b, err = t.readFile(ocispec.ImageIndexFile, maxIndexSize)
	if err != nil {
		return ocispec.Index{}, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil || idx.SchemaVersion != 2 {
		return ocispec.Index{}, fmt.Errorf("archive %s: %s is not a valid index: %w", t.path, ocispec.ImageIndexFile, core.ErrInvalid)
	}
	for i, d := range idx.Manifests {
		if err := manifest.ValidateDescriptor(d); err != nil {
			return ocispec.Index{}, fmt.Errorf("archive %s: %s: manifests[%d]: %v: %w", t.path, ocispec.ImageIndexFile, i, err, core.ErrInvalid)
		}
	}
	return idx, nil
}

func (s *ociSource) Close(context.Context) error { return s.t.close() }

func refName(d ocispec.Descriptor) string { return d.Annotations[ocispec.AnnotationRefName] }

func describe(entries []ocispec.Descriptor) string {
	var parts []string
	for _, e := range entries {
		if n := refName(e); n != "" {
			parts = append(parts, n)
		} else {
			parts = append(parts, e.Digest.String()+" (untagged)")
		}
	}
	if len(parts) == 0 {
		return "nothing"
	}
	return strings.Join(parts, ", ")
}

// Resolve takes a ref.name, a digest, or "" for the only image.
func (s *ociSource) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	return resolveIndex(ctx, s.t, s.index, ref)
}

func resolveIndex(ctx context.Context, t *tarFile, idx ocispec.Index, ref string) (ocispec.Descriptor, error) {
	entries := idx.Manifests
	if ref == "" {
		if len(entries) == 0 {
			return ocispec.Descriptor{}, fmt.Errorf("archive %s: holds no image: %w", t.path, core.ErrNotFound)
		}
		for _, e := range entries[1:] {
			if e.Digest != entries[0].Digest {
				return ocispec.Descriptor{}, fmt.Errorf("archive %s: holds %d images, name one of: %s: %w", t.path, len(entries), describe(entries), core.ErrInvalid)
			}
		}
		return entries[0], nil
	}
	if d := digest.Digest(ref); d.Validate() == nil {
		for _, e := range entries {
			if e.Digest == d {
				return e, nil
			}
		}
		b, err := readManifestBlob(t, ocispec.Descriptor{Digest: d})
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		return manifest.Descriptor(b, "")
	}
	var found []ocispec.Descriptor
	for _, match := range []func(ocispec.Descriptor) bool{
		func(e ocispec.Descriptor) bool { return refName(e) == ref },
		func(e ocispec.Descriptor) bool { return e.Annotations[containerdNameAnnotation] == ref },
		func(e ocispec.Descriptor) bool { return strings.HasSuffix(refName(e), ":"+ref) },
	} {
		for _, e := range entries {
			if match(e) {
				found = append(found, e)
			}
		}
		if len(found) > 0 {
			break
		}
	}
	if len(found) == 0 {
		return ocispec.Descriptor{}, fmt.Errorf("archive %s: no image named %q (have: %s): %w", t.path, ref, describe(entries), core.ErrNotFound)
	}
	for _, e := range found[1:] {
		if e.Digest != found[0].Digest {
			return ocispec.Descriptor{}, fmt.Errorf("archive %s: name %q is ambiguous: %s and %s: %w", t.path, ref, found[0].Digest, e.Digest, core.ErrInvalid)
		}
	}
	return found[0], nil
}

func readManifestBlob(t *tarFile, desc ocispec.Descriptor) ([]byte, error) {
	name, err := blobName(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", t.path, err)
	}
	b, err := t.readFile(name, content.MaxManifestSize)
	if err != nil {
		return nil, err
	}
	if desc.Size > 0 {
		if err := content.VerifyBytes(b, desc); err != nil {
			return nil, fmt.Errorf("archive %s: manifest %s: %w", t.path, desc.Digest, err)
		}
	} else if desc.Digest.Algorithm().FromBytes(b) != desc.Digest {
		return nil, fmt.Errorf("archive %s: manifest %s: %w", t.path, desc.Digest, core.ErrDigestMismatch)
	}
	return b, nil
}

func (s *ociSource) GetManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	return readManifestBlob(s.t, desc)
}

// Referrers implements pluginapi.ReferrerLister as an OCI layout does: the
// manifests index.json lists whose subject is the given digest.
func (s *ociSource) Referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	return s.refs.Among(ctx, s.index.Manifests, subject, artifactType, func(_ context.Context, d ocispec.Descriptor) ([]byte, error) {
		return readManifestBlob(s.t, d)
	})
}

func (s *ociSource) GetBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	name, err := blobName(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", s.t.path, err)
	}
	rc, _, err := s.t.open(name, offset)
	return rc, err
}

// ListTags lists the ref.name values of index.json.
func (s *ociSource) ListTags(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	tags := []string{}
	for _, e := range s.index.Manifests {
		if n := refName(e); n != "" && !seen[n] {
			seen[n] = true
			tags = append(tags, n)
		}
	}
	sort.Strings(tags)
	return tags, nil
}
