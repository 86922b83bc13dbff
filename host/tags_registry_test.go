package host_test

import (
	"context"
	"errors"
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

	got, err := h.Inspect(ctx, "docker://"+reg.Addr+"/untagged@"+img.Manifest.Digest.String(), host.InspectOptions{Options: opts.SrcOptions})
	if err != nil {
		t.Fatalf("inspect an untagged image: %v", err)
	}
	if got.Info.Digest != img.Manifest.Digest || len(got.Info.RepoTags) != 0 {
		t.Fatalf("inspect: digest %s, tags %v; want %s and none", got.Info.Digest, got.Info.RepoTags, img.Manifest.Digest)
	}
}
