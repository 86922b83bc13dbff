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
// Each repository mounts it once: copiers of several tags of one repository
// that mounted the same blob at once made docker-registry rewrite its link
// file under a concurrent manifest PUT, which then failed "blob unknown"
// (1 run in 12 of the sync tests).
//
// A run remembers every blob it moved (a mirror's later repository may
// need any of them), so an entry is kept small once its flight is done:
// the blob's key and a done flight shared by every blob that landed in the
// same repository (the flight under way, with its channel, some 150 bytes
// more, is dropped).
type blobShare struct {
	mu     sync.Mutex
	shares map[shareKey]*blobFlight
	mounts map[mountKey]*blobFlight
	// landed holds one done flight per destination location.
	landed map[string]*blobFlight
}

// shareKey names a blob's first transfer to a registry.
type shareKey struct {
	transport, registry string
	digest              digest.Digest
}

// mountKey names a blob's arrival in one more repository of that registry.
type mountKey struct {
	transport, location string
	digest              digest.Digest
}

// blobFlight is one operation on a blob that other copiers wait for.
type blobFlight struct {
	done chan struct{}
	loc  string // destination location holding the blob once done
	err  error
}

// closedDone is the done channel of flights that ended well.
var closedDone = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func newBlobShare() *blobShare {
	return &blobShare{shares: map[shareKey]*blobFlight{}, mounts: map[mountKey]*blobFlight{}, landed: map[string]*blobFlight{}}
}

// landedAt returns the done flight of a blob at loc. s.mu is held.
func (s *blobShare) landedAt(loc string) *blobFlight {
	f, ok := s.landed[loc]
	if !ok {
		f = &blobFlight{done: closedDone, loc: loc}
		s.landed[loc] = f
	}
	return f
}

// flightOnce runs do for the first caller of key in m (one of s's maps),
// the others waiting for it. It returns the flight and whether this caller
// ran it (then with do's error). A flight that failed is forgotten, so that
// a later caller tries again; one that succeeded is replaced by loc's
// shared done flight.
func flightOnce[K comparable](ctx context.Context, s *blobShare, m map[K]*blobFlight, key K, loc string, do func() error) (*blobFlight, bool, error) {
	s.mu.Lock()
	if f, ok := m[key]; ok {
		s.mu.Unlock()
		select {
		case <-f.done:
			return f, false, nil
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	f := &blobFlight{done: make(chan struct{})}
	m[key] = f
	s.mu.Unlock()
	f.err = do()
	if f.err == nil {
		f.loc = loc
	}
	close(f.done)
	s.mu.Lock()
	if m[key] == f {
		if f.err != nil {
			delete(m, key)
		} else {
			m[key] = s.landedAt(loc)
		}
	}
	s.mu.Unlock()
	return f, true, f.err
}

// transfer stores desc at c's destination: the first copier to need it on
// a registry transfers it; the others wait, then the first of each other
// repository mounts it from there (or transfers it when the mount is
// refused) while that repository's other copiers wait again.
func (s *blobShare) transfer(ctx context.Context, c *copier, desc ocispec.Descriptor) error {
	if c.opts.StreamOnly || (manifest.IsNonDistributable(desc.MediaType) && c.dst.ep.Transport == ref.Docker) {
		return c.transferBlob(ctx, desc)
	}
	here := c.dst.ep.Location
	f, ran, err := flightOnce(ctx, s, s.shares, shareKey{transport: c.dst.ep.Transport, registry: registryOf(c.dst.ep), digest: desc.Digest}, here,
		func() error { return c.transferBlob(ctx, desc) })
	switch {
	case ran || err != nil:
		return err
	case f.err != nil:
		return c.transferBlob(ctx, desc)
	case f.loc == here:
		c.skipped(desc)
		return nil
	}
	m, ran, err := flightOnce(ctx, s, s.mounts, mountKey{transport: c.dst.ep.Transport, location: here, digest: desc.Digest}, here, func() error {
		// A mount answers whether or not the repository already holds
		// the blob, so no HasBlob first: one request.
		if c.dst.has(pluginapi.CapMount) && c.mount(ctx, desc, f.loc) {
			return nil
		}
		return c.transferBlob(ctx, desc)
	})
	switch {
	case ran || err != nil:
		return err
	case m.err != nil:
		return c.transferBlob(ctx, desc)
	}
	c.skipped(desc)
	return nil
}
