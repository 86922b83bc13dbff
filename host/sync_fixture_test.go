package host_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/plugins/docker/registry"
	"github.com/stevedore-oci/stevedore/plugins/oci-layout/ocilayout"
)

// syncRepos and syncTags make the fixture: 5 repositories of 6 tags, 30
// images sharing a base layer (all), a repository layer (per repository)
// and a layer of their own.
var (
	syncRepos = []string{"alpha", "bravo", "charlie", "delta", "echo"}
	syncTags  = []string{"1.0.0", "1.1.0", "1.2.0", "2.0.0", "2.1.0-rc1", "latest"}
)

type syncFixture struct {
	base   []byte
	images map[string]*registrytest.Image // "repo:tag"
	// blobs holds every distinct blob (configs and layers) by digest.
	blobs map[digest.Digest]int64
}

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func newSyncFixture(t testing.TB) *syncFixture {
	f := &syncFixture{base: randBytes(t, 48<<10), images: map[string]*registrytest.Image{}, blobs: map[digest.Digest]int64{}}
	for _, repo := range syncRepos {
		repoLayer := randBytes(t, 16<<10)
		for _, tag := range syncTags {
			img, err := registrytest.NewImageFromLayers(ocispec.MediaTypeImageLayer, f.base, repoLayer, randBytes(t, 2<<10))
			if err != nil {
				t.Fatal(err)
			}
			f.images[repo+":"+tag] = img
			for d, b := range img.Blobs {
				f.blobs[d] = int64(len(b))
			}
		}
	}
	return f
}

func (f *syncFixture) digest(repo, tag string) digest.Digest {
	return f.images[repo+":"+tag].Manifest.Digest
}

// writeLayout stores repo's images in an OCI layout at dir.
func (f *syncFixture) writeLayout(t testing.TB, dir, repo string) {
	t.Helper()
	ctx := context.Background()
	s, err := layout.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range syncTags {
		img := f.images[repo+":"+tag]
		for d, b := range img.Blobs {
			desc := ocispec.Descriptor{Digest: d, Size: int64(len(b))}
			if err := s.WriteBlobBytes(ctx, desc, b); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.WriteBlobBytes(ctx, img.Manifest, img.ManifestRaw); err != nil {
			t.Fatal(err)
		}
		if err := s.Tag(ctx, img.Manifest, tag); err != nil {
			t.Fatal(err)
		}
	}
}

// push stores every image in reg (straight to the registry, not through
// the code under test).
func (f *syncFixture) push(t testing.TB, reg *registrytest.Registry, prefix string) {
	t.Helper()
	for _, repo := range syncRepos {
		for _, tag := range syncTags {
			if err := reg.Push(prefix+repo, tag, f.images[repo+":"+tag]); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// newSyncHost runs the oci and docker transports in process, with no plugin
// binaries.
func newSyncHost(t testing.TB) *host.Host {
	t.Helper()
	dp := registry.New()
	dp.RetryBase = 20 * time.Millisecond // fault tests must not sleep long
	dp.RetryMax = 200 * time.Millisecond
	h, err := host.New(host.Options{SearchPath: []string{t.TempDir()}, InProcess: []pluginapi.Plugin{ocilayout.New(), dp}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// layoutTags reads the tag -> digest map of a layout ("" map when missing).
func layoutTags(t testing.TB, dir string) map[string]digest.Digest {
	t.Helper()
	out := map[string]digest.Digest{}
	s, err := layout.Open(dir)
	if err != nil {
		return out
	}
	ctx := context.Background()
	tags, err := s.Tags(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		d, err := s.Resolve(ctx, tag)
		if err != nil {
			t.Fatal(err)
		}
		out[tag] = d.Digest
	}
	return out
}

// actions summarises a report as "action target" lines, sorted.
func actions(rep *host.SyncReport) []string {
	var out []string
	for _, r := range rep.Images {
		a := string(r.Action)
		if r.Reason != "" && r.Action == host.ActionSkipped {
			a += "(" + r.Reason + ")"
		}
		out = append(out, a+" "+r.Target)
	}
	sort.Strings(out)
	return out
}

func layoutDir(root, repo string) string { return filepath.Join(root, repo) }

// buildIndex makes an index of two single-layer images for linux/amd64 and
// linux/arm64, and returns it with its images.
func buildIndex(t testing.TB) (raw []byte, desc ocispec.Descriptor, imgs []*registrytest.Image, plats []ocispec.Platform) {
	t.Helper()
	plats = []ocispec.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for i := range plats {
		img, err := registrytest.NewImageFromLayers(ocispec.MediaTypeImageLayer, randBytes(t, 4<<10))
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
		d := img.Manifest
		d.Platform = &plats[i]
		idx.Manifests = append(idx.Manifests, d)
	}
	raw, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	desc = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	return raw, desc, imgs, plats
}

func mustWrite(t testing.TB, s *layout.Store, desc ocispec.Descriptor, b []byte) {
	t.Helper()
	if err := s.WriteBlobBytes(context.Background(), desc, b); err != nil {
		t.Fatal(fmt.Errorf("write %s: %w", desc.Digest, err))
	}
}
