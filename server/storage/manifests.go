package storage

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/manifest"
)

// Not-found errors the API maps to distinct codes. All wrap core.ErrNotFound.
var (
	ErrNameUnknown     = fmt.Errorf("repository unknown: %w", core.ErrNotFound)
	ErrManifestUnknown = fmt.Errorf("manifest unknown: %w", core.ErrNotFound)
	ErrBlobUnknown     = fmt.Errorf("blob unknown: %w", core.ErrNotFound)
)

// Resolve finds the manifest ref (a tag or a digest string) of repository
// name. A digest that is not in index.json but whose blob in the layout is a
// manifest (a child written by another tool) is found too.
func (s *Store) Resolve(name, ref string) (ocispec.Descriptor, error) {
	sn, err := s.loadRepo(name)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("repository %s: %w", name, ErrNameUnknown)
	}
	if d, err := digest.Parse(ref); err == nil {
		if desc, ok := sn.digests[d]; ok {
			return desc, nil
		}
		if desc, ok := s.detectManifestBlob(name, d); ok {
			return desc, nil
		}
		return ocispec.Descriptor{}, fmt.Errorf("repository %s: manifest %s: %w", name, ref, ErrManifestUnknown)
	}
	if desc, ok := sn.tags[ref]; ok {
		return desc, nil
	}
	return ocispec.Descriptor{}, fmt.Errorf("repository %s: manifest %s: %w", name, ref, ErrManifestUnknown)
}

func (s *Store) detectManifestBlob(name string, d digest.Digest) (ocispec.Descriptor, bool) {
	if !d.Algorithm().Available() {
		return ocispec.Descriptor{}, false
	}
	f, err := s.OpenBlob(name, d)
	if err != nil {
		return ocispec.Descriptor{}, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() > content.MaxManifestSize || fi.Size() < 2 {
		return ocispec.Descriptor{}, false
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return ocispec.Descriptor{}, false
	}
	m, err := manifest.Parse(b, "")
	if err != nil {
		return ocispec.Descriptor{}, false
	}
	desc := m.Descriptor()
	desc.Digest = d
	return desc, true
}

// manifestCache holds verified manifest bytes by digest. Content is
// immutable per digest, so entries never go stale; whether a repository
// still has a manifest is decided by its index (or blob link) first.
var (
	manifestCache     sync.Map // digest -> []byte
	manifestCacheSize atomic.Int64
)

const maxManifestCache = 32 << 20

func cacheManifest(d digest.Digest, b []byte) {
	if manifestCacheSize.Add(int64(len(b))) > maxManifestCache {
		manifestCacheSize.Add(-int64(len(b)))
		return
	}
	if _, loaded := manifestCache.LoadOrStore(d, b); loaded {
		manifestCacheSize.Add(-int64(len(b)))
	}
}

// ReadManifest returns the bytes of manifest desc in repository name,
// verified against desc. The caller must not modify them.
func (s *Store) ReadManifest(name string, desc ocispec.Descriptor) ([]byte, error) {
	if v, ok := manifestCache.Load(desc.Digest); ok {
		if b := v.([]byte); int64(len(b)) == desc.Size {
			return b, nil
		}
	}
	f, err := s.OpenBlob(name, desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("repository %s: manifest %s: %w", name, desc.Digest, ErrManifestUnknown)
	}
	defer f.Close()
	b, err := content.ReadAllVerified(f, desc, content.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("repository %s: manifest %s: %w", name, desc.Digest, err)
	}
	cacheManifest(desc.Digest, b)
	return b, nil
}

// PutManifest is what a manifest PUT stores.
type PutManifest struct {
	Tags         []string // none = by digest only
	Digest       digest.Digest
	MediaType    string
	ArtifactType string
	Raw          []byte
	// Blobs must be present in the repository (config, layers).
	Blobs []digest.Digest
	// Manifests must be present in the repository (index entries).
	Manifests []digest.Digest
}

// MissingError names a referenced blob or manifest that is not in the
// repository. It wraps ErrBlobUnknown or ErrManifestUnknown.
type MissingError struct {
	Digest   digest.Digest
	Manifest bool
}

func (e *MissingError) Error() string {
	if e.Manifest {
		return fmt.Sprintf("referenced manifest %s is not in the repository", e.Digest)
	}
	return fmt.Sprintf("referenced blob %s is not in the repository", e.Digest)
}

func (e *MissingError) Unwrap() error {
	if e.Manifest {
		return ErrManifestUnknown
	}
	return ErrBlobUnknown
}

// PutManifest stores a validated manifest in repository name and records it
// in index.json (tagged, or untagged when p.Tags is empty). The references
// are checked under the repository's lock, so gc cannot remove one between
// the check and the index write.
func (s *Store) PutManifest(ctx context.Context, name string, p PutManifest) error {
	desc := ocispec.Descriptor{MediaType: p.MediaType, Digest: p.Digest, Size: int64(len(p.Raw)), ArtifactType: p.ArtifactType}
	if (len(p.Blobs) > 0 || len(p.Manifests) > 0) && !s.Exists(name) {
		// A repository that does not exist holds none of the references:
		// refuse before update creates its layout, so a rejected push
		// leaves no empty repository behind (catalog, tags/list).
		for _, d := range p.Blobs {
			if _, err := s.StatBlob(name, d); err != nil {
				return fmt.Errorf("repository %s: %w", name, &MissingError{Digest: d})
			}
		}
		for _, d := range p.Manifests {
			if _, ok := s.detectManifestBlob(name, d); !ok {
				return fmt.Errorf("repository %s: %w", name, &MissingError{Digest: d, Manifest: true})
			}
		}
	}
	return s.update(ctx, name, func(idx *ocispec.Index) (bool, error) {
		for _, d := range p.Blobs {
			if _, err := s.StatBlob(name, d); err != nil {
				return false, fmt.Errorf("repository %s: %w", name, &MissingError{Digest: d})
			}
		}
		if len(p.Manifests) > 0 {
			known := make(map[digest.Digest]bool, len(idx.Manifests))
			for _, e := range idx.Manifests {
				known[e.Digest] = true
			}
			for _, d := range p.Manifests {
				if !known[d] {
					if _, ok := s.detectManifestBlob(name, d); !ok {
						return false, fmt.Errorf("repository %s: %w", name, &MissingError{Digest: d, Manifest: true})
					}
				}
			}
		}
		if err := s.putBlobBytes(ctx, name, p.Digest, p.Raw); err != nil {
			return false, err
		}
		s.rememberManifest(p.Digest, p.Raw)
		cacheManifest(p.Digest, p.Raw)
		if len(p.Tags) == 0 {
			return setEntry(idx, desc, ""), nil
		}
		changed := false
		for _, t := range p.Tags {
			if setEntry(idx, desc, t) {
				changed = true
			}
		}
		return changed, nil
	})
}

// setEntry records desc in idx, under tag if it is not empty. Invariant:
// every manifest digest known to the repository has at least one entry;
// an untagged entry exists only when no tag points at the digest.
func setEntry(idx *ocispec.Index, desc ocispec.Descriptor, tag string) bool {
	if tag == "" {
		for _, e := range idx.Manifests {
			if e.Digest == desc.Digest {
				return false
			}
		}
		idx.Manifests = append(idx.Manifests, desc)
		return true
	}
	var old digest.Digest
	out := idx.Manifests[:0:0]
	for _, e := range idx.Manifests {
		t := e.Annotations[ocispec.AnnotationRefName]
		switch {
		case t == tag && e.Digest == desc.Digest:
			return false
		case t == tag:
			old = e.Digest
			continue
		case t == "" && e.Digest == desc.Digest:
			continue
		}
		out = append(out, e)
	}
	tagged := desc
	tagged.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
	out = append(out, tagged)
	if old != "" {
		keepUntagged(&out, idx.Manifests, old)
	}
	idx.Manifests = out
	return true
}

// keepUntagged adds an untagged entry for d (copied from before) when no
// entry in out names it any more, so it stays retrievable by digest.
func keepUntagged(out *[]ocispec.Descriptor, before []ocispec.Descriptor, d digest.Digest) {
	for _, e := range *out {
		if e.Digest == d {
			return
		}
	}
	for _, e := range before {
		if e.Digest == d {
			e.Annotations = nil
			*out = append(*out, e)
			return
		}
	}
}

// DeleteManifest removes manifest d, and every tag pointing at it, from
// repository name.
func (s *Store) DeleteManifest(ctx context.Context, name string, d digest.Digest) error {
	if !s.Exists(name) {
		return fmt.Errorf("repository %s: %w", name, ErrNameUnknown)
	}
	return s.update(ctx, name, func(idx *ocispec.Index) (bool, error) {
		n := len(idx.Manifests)
		idx.Manifests = slices.DeleteFunc(idx.Manifests, func(e ocispec.Descriptor) bool { return e.Digest == d })
		found := len(idx.Manifests) != n
		if !found {
			if _, ok := s.detectManifestBlob(name, d); !ok {
				return false, fmt.Errorf("repository %s: manifest %s: %w", name, d, ErrManifestUnknown)
			}
		}
		if err := os.Remove(s.repoBlobPath(name, d)); err != nil && !isNotExist(err) {
			return false, fmt.Errorf("repository %s: delete manifest %s: %w", name, d, err)
		}
		return found, nil
	})
}

// DeleteTag removes tag from repository name; the manifest stays
// retrievable by digest.
func (s *Store) DeleteTag(ctx context.Context, name, tag string) error {
	if !s.Exists(name) {
		return fmt.Errorf("repository %s: %w", name, ErrNameUnknown)
	}
	return s.update(ctx, name, func(idx *ocispec.Index) (bool, error) {
		before := slices.Clone(idx.Manifests)
		var old digest.Digest
		idx.Manifests = slices.DeleteFunc(idx.Manifests, func(e ocispec.Descriptor) bool {
			if e.Annotations[ocispec.AnnotationRefName] == tag {
				old = e.Digest
				return true
			}
			return false
		})
		if old == "" {
			return false, fmt.Errorf("repository %s: tag %s: %w", name, tag, ErrManifestUnknown)
		}
		keepUntagged(&idx.Manifests, before, old)
		return true, nil
	})
}

// Tags lists the tags of repository name in lexical order.
func (s *Store) Tags(name string) ([]string, error) {
	sn, err := s.loadRepo(name)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", name, ErrNameUnknown)
	}
	return sn.tagList, nil
}

// manifestInfo is what the referrers API needs from a manifest. Content
// is immutable per digest, so it is cached for the life of the process.
type manifestInfo struct {
	subject digest.Digest
	desc    ocispec.Descriptor // artifactType and annotations filled
}

var manifestInfos sync.Map // digest -> *manifestInfo

func infoOf(d digest.Digest, raw []byte) *manifestInfo {
	if v, ok := manifestInfos.Load(d); ok {
		return v.(*manifestInfo)
	}
	info := &manifestInfo{}
	if r, ok := manifest.ReadReferrer(raw); ok {
		mt := r.MediaType
		if mt == "" {
			mt, _ = manifest.DetectMediaType(raw)
		}
		info.desc = ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw)), ArtifactType: r.ArtifactType, Annotations: r.Annotations}
		info.subject = r.Subject
	}
	manifestInfos.Store(d, info)
	return info
}

func (s *Store) rememberManifest(d digest.Digest, raw []byte) { infoOf(d, raw) }

// Referrers lists the manifests of repository name whose subject is d. An
// unknown repository has no referrers.
func (s *Store) Referrers(name string, d digest.Digest) ([]ocispec.Descriptor, error) {
	sn, err := s.loadRepo(name)
	if err != nil {
		return []ocispec.Descriptor{}, nil
	}
	sn.refOnce.Do(func() {
		sn.referrers = map[digest.Digest][]ocispec.Descriptor{}
		seen := map[digest.Digest]bool{}
		for _, e := range sn.index.Manifests {
			if seen[e.Digest] {
				continue
			}
			seen[e.Digest] = true
			info, ok := manifestInfos.Load(e.Digest)
			if !ok {
				b, err := s.ReadManifest(name, ocispec.Descriptor{Digest: e.Digest, Size: e.Size, MediaType: e.MediaType})
				if err != nil {
					continue
				}
				info = infoOf(e.Digest, b)
			}
			mi := info.(*manifestInfo)
			if mi.subject != "" {
				sn.referrers[mi.subject] = append(sn.referrers[mi.subject], mi.desc)
			}
		}
	})
	out := sn.referrers[d]
	if out == nil {
		out = []ocispec.Descriptor{}
	}
	return out, nil
}
