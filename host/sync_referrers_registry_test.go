package host_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/host/syncspec"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
)

// referrerWorld is a source of layouts whose images have referrers, several
// tags naming one image (as "latest" names a release), and referrers of
// referrers (a signature of an SBOM).
type referrerWorld struct {
	root string
	// referrers maps a repository to the referrers written there, by
	// subject.
	referrers map[string]map[digest.Digest][]digest.Digest
}

var referrerRepos = []string{"r1", "r2", "r3"}

func newReferrerWorld(t *testing.T) *referrerWorld {
	t.Helper()
	w := &referrerWorld{root: t.TempDir(), referrers: map[string]map[digest.Digest][]digest.Digest{}}
	ctx := context.Background()
	for _, repo := range referrerRepos {
		s, err := layout.Create(filepath.Join(w.root, repo))
		if err != nil {
			t.Fatal(err)
		}
		w.referrers[repo] = map[digest.Digest][]digest.Digest{}
		for i := 0; i < 3; i++ {
			img, err := registrytest.NewImageFromLayers(ocispec.MediaTypeImageLayer, randBytes(t, 2<<10))
			if err != nil {
				t.Fatal(err)
			}
			for d, b := range img.Blobs {
				mustWrite(t, s, ocispec.Descriptor{Digest: d, Size: int64(len(b))}, b)
			}
			mustWrite(t, s, img.Manifest, img.ManifestRaw)
			// Four tags name each image.
			for _, form := range []string{"%d", "%d.0", "%d.0.0", "v%d"} {
				if err := s.Tag(ctx, img.Manifest, fmt.Sprintf(form, i)); err != nil {
					t.Fatal(err)
				}
			}
			// 1 to 3 referrers, the first with a referrer of its own.
			for k := 0; k <= i%3; k++ {
				r := writeReferrer(t, s, img.Manifest, fmt.Sprintf("%s-%d-%d", repo, i, k))
				w.referrers[repo][img.Manifest.Digest] = append(w.referrers[repo][img.Manifest.Digest], r.Digest)
				if k == 0 {
					rr := writeReferrer(t, s, r, fmt.Sprintf("%s-%d-%d-sig", repo, i, k))
					w.referrers[repo][r.Digest] = append(w.referrers[repo][r.Digest], rr.Digest)
				}
			}
		}
	}
	return w
}

// writeReferrer stores an artifact manifest (payload name) whose subject is
// subject, recorded untagged in index.json as the oci transport does.
func writeReferrer(t *testing.T, s *layout.Store, subject ocispec.Descriptor, name string) ocispec.Descriptor {
	t.Helper()
	payload := []byte(`{"payload":"` + name + `"}`)
	pd := ocispec.Descriptor{MediaType: "application/vnd.example.payload", Digest: digest.FromBytes(payload), Size: int64(len(payload))}
	mustWrite(t, s, pd, payload)
	mustWrite(t, s, ocispec.DescriptorEmptyJSON, ocispec.DescriptorEmptyJSON.Data)
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: "application/vnd.example.payload",
		Config:       ocispec.DescriptorEmptyJSON,
		Layers:       []ocispec.Descriptor{pd},
		Subject:      &ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: m.ArtifactType, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	mustWrite(t, s, d, raw)
	if err := s.Tag(context.Background(), d, d.Digest.String()); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestSyncReferrersParallelIntoDockerRegistry mirrors repositories whose
// images have referrers, with several tags naming each image, in parallel
// into docker-registry, which has no referrers API: oras-go keeps each
// subject's referrers tag index, and the registry checks the index's
// entries when it is pushed. The tags of one image each sync its
// referrers; each referrer must be written once: docker-registry 2.8
// rewrites a manifest's link file in place, and an index pushed while an
// entry of it is written again failed with MANIFEST_BLOB_UNKNOWN (a
// flaky failure, in most runs of a bigger sync). Every referrer arrives,
// listed in its subject's index, and is counted once.
func TestSyncReferrersParallelIntoDockerRegistry(t *testing.T) {
	w := newReferrerWorld(t)
	dst := registrytest.Start(t, registrytest.Options{})
	h := newSyncHost(t)
	for round := 0; round < 2; round++ {
		// A new set of repositories each round: the same race, again.
		prefix := fmt.Sprintf("round%d", round)
		var yml strings.Builder
		yml.WriteString("defaults: {referrers: true, target-tls-verify: false}\nsync:\n")
		for _, repo := range referrerRepos {
			fmt.Fprintf(&yml, "  - {source: 'oci:%s', target: '%s/%s/%s'}\n", filepath.Join(w.root, repo), dst.Addr, prefix, repo)
		}
		res, err := syncspec.Parse([]byte(yml.String()), syncspec.Options{})
		if err != nil {
			t.Fatal(err)
		}
		dst.ResetStats()
		rep, err := h.Sync(context.Background(), res.Jobs, host.SyncOptions{Parallel: 8, KeepGoing: true})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		puts := map[string]int{}
		for _, q := range dst.Requests() {
			if q.Method == http.MethodPut && strings.Contains(q.Path, "/manifests/") {
				puts[q.Path]++
			}
		}
		want := 0
		for _, repo := range referrerRepos {
			repository := prefix + "/" + repo
			for subject, refs := range w.referrers[repo] {
				want += len(refs)
				listed := referrersIndex(t, dst, repository, subject)
				for _, r := range refs {
					if _, _, err := dst.GetManifest(repository, r.String()); err != nil {
						t.Errorf("round %d: referrer %s of %s not in %s: %v", round, r, subject, repository, err)
					}
					if !listed[r] {
						t.Errorf("round %d: the referrers index of %s in %s lacks %s", round, subject, repository, r)
					}
					if n := puts["/v2/"+repository+"/manifests/"+r.String()]; n != 1 {
						t.Errorf("round %d: referrer %s written %d times to %s, want once", round, r, n, repository)
					}
				}
			}
		}
		if rep.Referrers != want {
			t.Errorf("round %d: %d referrers reported copied, want %d", round, rep.Referrers, want)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
}

// A referrer the target holds but its subject's referrers tag index no
// longer lists (another client's read-extend-push of the index dropped the
// entry) is listed again by the next sync, which writes only that one: the
// target's referrers are listed once per subject, not checked by digest.
func TestSyncReferrersRelistsDroppedEntry(t *testing.T) {
	w := newReferrerWorld(t)
	dst := registrytest.Start(t, registrytest.Options{})
	h := newSyncHost(t)
	repo := referrerRepos[0]
	yml := fmt.Sprintf("defaults: {referrers: true, target-tls-verify: false}\nsync:\n  - {source: 'oci:%s', target: '%s/m/%s'}\n", filepath.Join(w.root, repo), dst.Addr, repo)
	res, err := syncspec.Parse([]byte(yml), syncspec.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Sync(context.Background(), res.Jobs, host.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	// The subject with most referrers loses one from its index.
	var subject digest.Digest
	for s, refs := range w.referrers[repo] {
		if len(refs) > len(w.referrers[repo][subject]) {
			subject = s
		}
	}
	repository := "m/" + repo
	raw, mt, err := dst.GetManifest(repository, "sha256-"+subject.Encoded())
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	dropped := idx.Manifests[0].Digest
	idx.Manifests = idx.Manifests[1:]
	raw, err = json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.PushManifest(repository, "sha256-"+subject.Encoded(), mt, raw); err != nil {
		t.Fatal(err)
	}

	dst.ResetStats()
	rep, err := h.Sync(context.Background(), res.Jobs, host.SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !referrersIndex(t, dst, repository, subject)[dropped] {
		t.Fatalf("the referrers index of %s still lacks %s after a second sync", subject, dropped)
	}
	var puts []string
	for _, q := range dst.Requests() {
		if q.Method == http.MethodPut && strings.Contains(q.Path, "/manifests/sha256:") {
			puts = append(puts, q.Path)
		}
	}
	if rep.Referrers != 1 || len(puts) != 1 || !strings.HasSuffix(puts[0], dropped.String()) {
		t.Fatalf("second sync: %d referrers copied, manifest PUTs %v; want %s alone", rep.Referrers, puts, dropped)
	}
}

// referrersIndex reads the referrers tag index of subject in repository.
func referrersIndex(t *testing.T, r *registrytest.Registry, repository string, subject digest.Digest) map[digest.Digest]bool {
	t.Helper()
	raw, _, err := r.GetManifest(repository, "sha256-"+subject.Encoded())
	if err != nil {
		t.Errorf("referrers index of %s in %s: %v", subject, repository, err)
		return nil
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	out := map[digest.Digest]bool{}
	for _, d := range idx.Manifests {
		out[d.Digest] = true
	}
	return out
}
