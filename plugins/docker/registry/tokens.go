package registry

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"oras.land/oras-go/v2/registry/remote/auth"
)

// tokenCache is an endpoint's token cache (oras-go's) that also remembers
// when each bearer token was fetched. Registries hand out short-lived
// tokens (Docker Hub's last 300 s) and a chunked upload can outlive one: a
// PATCH refused for an expired token cannot be sent again from a stream
// (its body is gone), so the upload renews an old token between chunks
// with a request that has no body (see Writer.renewToken).
type tokenCache struct {
	auth.Cache

	mu      sync.Mutex
	fetched map[string]time.Time // registry + " " + key -> when fetched
}

func newTokenCache() *tokenCache {
	return &tokenCache{Cache: auth.NewCache(), fetched: map[string]time.Time{}}
}

// renewKey marks the context of a request that must not use a cached
// bearer token, so that the registry's challenge makes oras-go fetch a new
// one. Requests of other contexts go on with the cached token meanwhile.
type renewKey struct{}

var errRenew = errors.New("token renewal: cached token skipped")

// GetToken implements auth.Cache.
func (c *tokenCache) GetToken(ctx context.Context, registry string, scheme auth.Scheme, key string) (string, error) {
	if scheme == auth.SchemeBearer && ctx.Value(renewKey{}) != nil {
		return "", errRenew
	}
	return c.Cache.GetToken(ctx, registry, scheme, key)
}

// Set implements auth.Cache, noting when a bearer token was fetched.
func (c *tokenCache) Set(ctx context.Context, registry string, scheme auth.Scheme, key string, fetch func(context.Context) (string, error)) (string, error) {
	tok, err := c.Cache.Set(ctx, registry, scheme, key, fetch)
	if err == nil && scheme == auth.SchemeBearer {
		c.touch(registry, key)
	}
	return tok, err
}

func (c *tokenCache) touch(registry, key string) {
	c.mu.Lock()
	c.fetched[registry+" "+key] = time.Now()
	c.mu.Unlock()
}

// age is how long ago the bearer token for registry and key was fetched;
// ok is false when there is none. When the key is not known (the registry
// challenged with other scopes than the request's, so oras-go cached the
// token under the merged ones), the oldest token of the registry counts.
func (c *tokenCache) age(registry, key string) (age time.Duration, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.fetched[registry+" "+key]
	if !ok {
		for k, at := range c.fetched {
			if strings.HasPrefix(k, registry+" ") && (!ok || at.Before(t)) {
				t, ok = at, true
			}
		}
	}
	return time.Since(t), ok
}

// renewToken fetches a new bearer token for ctx's scopes when the cached
// one is older than Plugin.TokenRenewAge, by sending a GET of the upload
// session loc without it (no body: oras-go answers the challenge and sends
// it again). Anything but a token fetch is left to the next request.
func (w *Writer) renewToken(ctx context.Context, loc string) {
	if w.p.TokenRenewAge <= 0 {
		return
	}
	key := strings.Join(auth.GetAllScopesForHost(ctx, w.host), " ")
	if age, ok := w.tokens.age(w.host, key); !ok || age < w.p.TokenRenewAge {
		return
	}
	resp, err := w.do(context.WithValue(ctx, renewKey{}, true), http.MethodGet, loc, nil, 0, nil)
	if err == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
	if age, ok := w.tokens.age(w.host, key); ok && age >= w.p.TokenRenewAge {
		// The registry did not ask for a new token (or did not answer):
		// ask again after another TokenRenewAge, not before every chunk.
		w.tokens.touch(w.host, key)
	}
}
