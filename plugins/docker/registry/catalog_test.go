package registry

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// TestListRepositories reads distribution's catalog, page by page, at a
// registry alone and under a prefix, anonymous, with basic auth and with
// token auth (the catalog takes its own scope, registry:catalog:*).
func TestListRepositories(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []registrytest.Auth{registrytest.AuthNone, registrytest.AuthBasic, registrytest.AuthToken} {
		reg := registrytest.Start(t, registrytest.Options{Auth: mode})
		for _, repo := range []string{"team", "team/a", "team/b/c", "team-x", "teamz", "other/d"} {
			reg.Seed(repo, "v1", 1, 10)
		}
		p := testPlugin()
		p.CatalogPageSize = 2 // several pages: Link is followed
		open := func(loc string, mode pluginapi.Mode) (pluginapi.Endpoint, error) {
			return p.Open(ctx, pluginapi.OpenRequest{Transport: "docker", Location: loc, Mode: mode, Options: baseOptions(reg)})
		}
		root, err := open(reg.Addr, pluginapi.ModeRead)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close(ctx)
		if caps := pluginapi.Capabilities(root); !slices.Equal(caps, []string{pluginapi.CapListRepositories}) {
			t.Fatalf("a registry alone advertises %v, want only %s", caps, pluginapi.CapListRepositories)
		}
		all, err := root.(pluginapi.RepositoryLister).ListRepositories(ctx)
		want := []string{"other/d", "team", "team-x", "team/a", "team/b/c", "teamz"}
		for i := range want {
			want[i] = reg.Addr + "/" + want[i]
		}
		if err != nil || !slices.Equal(all, want) {
			t.Fatalf("auth %v: catalog %v, %v; want %v", mode, all, err, want)
		}
		under, err := openReader(t, p, reg, "team", nil).ListRepositories(ctx)
		if want := []string{reg.Addr + "/team", reg.Addr + "/team/a", reg.Addr + "/team/b/c"}; err != nil || !slices.Equal(under, want) {
			t.Fatalf("auth %v: under team %v, %v; want %v", mode, under, err, want)
		}
		pages := 0
		for _, r := range reg.Requests() {
			if r.Path == "/v2/_catalog" && r.Status == 200 {
				pages++
			}
		}
		if pages < 6 { // 6 repositories in pages of 2, twice
			t.Errorf("auth %v: %d catalog pages for two listings in pages of 2, want at least 6", mode, pages)
		}
		if _, err := open(reg.Addr, pluginapi.ModeWrite); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("a registry alone opened for writing: %v", err)
		}
	}

	// Anonymous users of a token registry get no catalog: the error says
	// which registry, which step and which credentials.
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthToken})
	reg.Seed("a", "v1", 1, 10)
	e, err := testPlugin().Open(ctx, pluginapi.OpenRequest{Transport: "docker", Location: reg.Addr, Mode: pluginapi.ModeRead, Options: map[string]string{"tls-verify": "false", "no-creds": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.(pluginapi.RepositoryLister).ListRepositories(ctx)
	if !errors.Is(err, core.ErrUnauthorized) || !strings.Contains(err.Error(), "registry "+reg.Addr+": list repositories (GET /v2/_catalog)") {
		t.Fatalf("anonymous catalog: %v", err)
	}

	// A prefix that is no repository name (Docker Hub's namespaces) opens
	// for listing only.
	hub, err := testPlugin().Open(ctx, pluginapi.OpenRequest{Transport: "docker", Location: "docker.io/library", Mode: pluginapi.ModeRead})
	if err != nil || !slices.Equal(pluginapi.Capabilities(hub), []string{pluginapi.CapListRepositories}) {
		t.Fatalf("docker.io/library: %v", err)
	}
	if _, err := testPlugin().Open(ctx, pluginapi.OpenRequest{Transport: "docker", Location: "docker.io/library", Mode: pluginapi.ModeWrite}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("docker.io/library opened for writing: %v", err)
	}

	for _, bad := range []string{"alpine", "UPPER_CASE"} {
		if _, err := testPlugin().Open(ctx, pluginapi.OpenRequest{Transport: "docker", Location: bad, Mode: pluginapi.ModeRead}); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("location %q: %v, want invalid", bad, err)
		}
	}
}
