package registry

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	orasregistry "oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/ref"
)

const (
	// maxCatalogPages bounds the Link pages followed: a registry must not
	// make us list forever.
	maxCatalogPages = 10_000
)

// Catalog is an endpoint opened at a registry alone ("127.0.0.1:5000",
// "ghcr.io"): it lists the registry's repositories and does nothing else.
type Catalog struct{ e *endpoint }

// Close implements pluginapi.Endpoint.
func (c *Catalog) Close(ctx context.Context) error { return c.e.Close(ctx) }

// ListRepositories implements pluginapi.RepositoryLister.
func (c *Catalog) ListRepositories(ctx context.Context) ([]string, error) {
	return c.e.ListRepositories(ctx)
}

// registryRoot reports whether location names a registry alone (no
// repository), returning the registry name as references spell it.
func registryRoot(location string) (string, bool, error) {
	if strings.Contains(location, "/") {
		return "", false, nil
	}
	name, err := ref.DockerPrefix(location)
	if err != nil {
		return "", true, fmt.Errorf("docker location %w", err)
	}
	return name, true, nil
}

// ListRepositories implements pluginapi.RepositoryLister: the registry's
// catalog (GET /v2/_catalog, following Link pagination), keeping the
// repositories at or under the endpoint's (all of them for a Catalog), as
// HOST/REPOSITORY locations in lexical order. Registries that do not serve the catalog
// (Docker Hub, most cloud registries to anonymous users) answer 401, 403 or
// 404: the error says so.
func (e *endpoint) ListRepositories(ctx context.Context) ([]string, error) {
	const step = "list repositories (GET /v2/_catalog)"
	if _, err := e.baseURL(ctx); err != nil {
		return nil, err
	}
	e.mu.Lock()
	plain := e.scheme == "http"
	e.mu.Unlock()
	reg := &remote.Registry{
		RepositoryOptions: remote.RepositoryOptions{
			Client:           e.client,
			Reference:        orasregistry.Reference{Registry: e.host},
			PlainHTTP:        plain,
			MaxMetadataBytes: 16 << 20,
		},
		RepositoryListPageSize: cmp.Or(e.p.CatalogPageSize, 1000),
	}
	var out []string
	pages := 0
	err := reg.Repositories(ctx, "", func(repos []string) error {
		if pages++; pages > maxCatalogPages {
			return fmt.Errorf("more than %d pages of repositories: %w", maxCatalogPages, core.ErrTooLarge)
		}
		for _, r := range repos {
			if e.repo == "" || r == e.repo || strings.HasPrefix(r, e.repo+"/") {
				out = append(out, e.name+"/"+r)
			}
		}
		return nil
	})
	if err != nil {
		return nil, e.fail(step, err)
	}
	if out == nil {
		out = []string{}
	}
	// distribution walks its storage tree ("team/a" before "team-x"):
	// sorted, a listing reads the same from any registry.
	slices.Sort(out)
	return out, nil
}
