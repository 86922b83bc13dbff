package host

import (
	"context"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/core/ref"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// blobShare lets the copiers of one sync run cooperate on blobs: a blob
// needed by several repositories of the same destination registry moves
// once, and the other repositories mount it from the one that has it
// (cross-repository mount) instead of pulling it again from the source.
type blobShare struct {
	mu      sync.Mutex
	flights map[shareKey]*blobFlight
	// mounts: one mount per blob and destination repository. Copiers of
	// several tags of one repository that mounted the same blob at once
	// made docker-registry rewrite its link file under a concurrent
	// manifest PUT, which then failed "blob unknown" (1 run in 12 of the
	// sync tests).
	mounts map[mountKey]*blobFlight
}

type shareKey struct {
	transport, registry string
	digest              digest.Digest
}

type mountKey struct {
	transport, location string
	digest              digest.Digest
}

// blobFlight is one blob's first transfer to a destination registry.
type blobFlight struct {
	done chan struct{}
	loc  string // destination location holding the blob once done
	err  error
}

func newBlobShare() *blobShare {
	return &blobShare{flights: map[shareKey]*blobFlight{}, mounts: map[mountKey]*blobFlight{}}
}

// transfer stores desc at c's destination: the first copier to need it on
// a registry transfers it; the others wait, then mount it from there (or
// transfer it themselves when the mount is refused).
func (s *blobShare) transfer(ctx context.Context, c *copier, desc ocispec.Descriptor) error {
	if c.opts.StreamOnly || (manifest.IsNonDistributable(desc.MediaType) && c.dst.ep.Transport == ref.Docker) {
		return c.transferBlob(ctx, desc)
	}
	key := shareKey{transport: c.dst.ep.Transport, registry: registryOf(c.dst.ep), digest: desc.Digest}
	s.mu.Lock()
	f, ok := s.flights[key]
	if !ok {
		f = &blobFlight{done: make(chan struct{})}
		s.flights[key] = f
		s.mu.Unlock()
		err := c.transferBlob(ctx, desc)
		f.err = err
		if err == nil {
			f.loc = c.dst.ep.Location
		}
		close(f.done)
		if err != nil {
			// Let a later copier try again.
			s.mu.Lock()
			if s.flights[key] == f {
				delete(s.flights, key)
			}
			s.mu.Unlock()
		}
		return err
	}
	s.mu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if f.err != nil {
		return c.transferBlob(ctx, desc)
	}
	if f.loc == c.dst.ep.Location {
		c.skipped(desc)
		return nil
	}
	// The first copier into this repository mounts (or, refused,
	// transfers); the others wait for it.
	mk := mountKey{transport: c.dst.ep.Transport, location: c.dst.ep.Location, digest: desc.Digest}
	s.mu.Lock()
	m, ok := s.mounts[mk]
	if ok {
		s.mu.Unlock()
		select {
		case <-m.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if m.err == nil {
			c.skipped(desc)
			return nil
		}
		return c.transferBlob(ctx, desc)
	}
	m = &blobFlight{done: make(chan struct{})}
	s.mounts[mk] = m
	s.mu.Unlock()
	// A mount answers whether or not the repository already holds the
	// blob, so no HasBlob first: one request.
	var err error
	if !c.dst.has(pluginapi.CapMount) || !c.mount(ctx, desc, f.loc) {
		err = c.transferBlob(ctx, desc)
	}
	m.err = err
	close(m.done)
	if err != nil {
		s.mu.Lock()
		if s.mounts[mk] == m {
			delete(s.mounts, mk)
		}
		s.mu.Unlock()
	}
	return err
}
