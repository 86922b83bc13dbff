package host_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/plugins/docker/registry"
)

// TestTagsOfUnknownRepository: listing the tags of a repository the
// registry does not know fails, naming it (as skopeo and crane do); inspect
// of an image the registry holds untagged, whose repository distribution
// also calls unknown, shows no tags instead of failing.
func TestTagsOfUnknownRepository(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	img := reg.Seed("untagged", "", 1, 100)
	h, opts := dockerHost(t, registry.New())

	_, err := h.ListTags(ctx, "docker://"+reg.Addr+"/nope", opts.SrcOptions)
	if !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), "repository nope: list tags: the registry does not know the repository") {
		t.Fatalf("list tags of an unknown repository: %v; want a not-found error naming it", err)
	}
	// A reference naming an image is refused, as skopeo refuses it: with no
	// repository (docker://HOST:PORT) it would read as a Docker Hub image.
	for _, r := range []string{reg.Addr + "/untagged:v1", reg.Addr} {
		if _, err := h.ListTags(ctx, "docker://"+r, opts.SrcOptions); !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "without a tag or digest") {
			t.Fatalf("list tags of docker://%s: %v", r, err)
		}
	}

	got, err := h.Inspect(ctx, "docker://"+reg.Addr+"/untagged@"+img.Manifest.Digest.String(), host.InspectOptions{Options: opts.SrcOptions})
	if err != nil {
		t.Fatalf("inspect an untagged image: %v", err)
	}
	if got.Info.Digest != img.Manifest.Digest || len(got.Info.RepoTags) != 0 {
		t.Fatalf("inspect: digest %s, tags %v; want %s and none", got.Info.Digest, got.Info.RepoTags, img.Manifest.Digest)
	}
}

// A reference naming both a tag and a digest reads the digest (as docker
// and crane do); copying to it or deleting it is refused, with nothing
// written or removed, instead of the tag being dropped (delete by digest
// would remove every tag of the manifest).
func TestTagAndDigest(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	img := reg.Seed("r", "v1", 1, 100)
	h, opts := dockerHost(t, registry.New())
	d := img.Manifest.Digest.String()

	got, err := h.Inspect(ctx, "docker://"+reg.Addr+"/r:other@"+d, host.InspectOptions{Options: opts.SrcOptions})
	if err != nil || got.Info.Digest != img.Manifest.Digest {
		t.Fatalf("inspect NAME:TAG@DIGEST: %v", err)
	}
	_, err = h.Copy(ctx, "docker://"+reg.Addr+"/r:v1", "docker://"+reg.Addr+"/r2:t@"+d, opts)
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), `names both tag "t" and a digest`) {
		t.Fatalf("copy to NAME:TAG@DIGEST: %v; want it refused", err)
	}
	if _, _, err := reg.GetManifest("r2", d); err == nil {
		t.Errorf("the refused copy wrote the manifest")
	}
	err = h.Delete(ctx, "docker://"+reg.Addr+"/r:v1@"+d, opts.DstOptions)
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("delete NAME:TAG@DIGEST: %v; want it refused", err)
	}
	if _, _, err := reg.GetManifest("r", "v1"); err != nil {
		t.Errorf("the refused delete removed the image: %v", err)
	}
}

// TestListRepositories: a registry's catalog, whole (docker://HOST) or
// under a prefix; a transport without catalogs says so.
func TestListRepositories(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	for _, repo := range []string{"team/a", "team/b", "other"} {
		reg.Seed(repo, "v1", 1, 10)
	}
	h, opts := dockerHost(t, registry.New())
	all, err := h.ListRepositories(ctx, "docker://"+reg.Addr, opts.SrcOptions)
	if err != nil || !slices.Equal(all.Repositories, []string{reg.Addr + "/other", reg.Addr + "/team/a", reg.Addr + "/team/b"}) || all.Location != reg.Addr {
		t.Fatalf("catalog: %+v, %v", all, err)
	}
	team, err := h.ListRepositories(ctx, "docker://"+reg.Addr+"/team", opts.SrcOptions)
	if err != nil || !slices.Equal(team.Repositories, []string{reg.Addr + "/team/a", reg.Addr + "/team/b"}) {
		t.Fatalf("under team: %+v, %v", team, err)
	}
	if _, err := h.ListRepositories(ctx, "docker://"+reg.Addr+"/team:v1", opts.SrcOptions); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("a prefix with a tag: %v", err)
	}
}
