package transporttest

import (
	"context"
	"io"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// CopyImage copies the image ref of src to dst under dstRef, children before
// parents as the host's copy engine does, without the host's checks: a
// transport's own tests use it to move real images between endpoints.
func CopyImage(t testing.TB, src pluginapi.Source, ref string, dst pluginapi.Destination, dstRef string) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	top, err := src.Resolve(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	var walk func(d ocispec.Descriptor, r string)
	walk = func(d ocispec.Descriptor, r string) {
		raw, err := src.GetManifest(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		m, err := manifest.Parse(raw, d.MediaType)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range m.Children() {
			if m.IsIndex() {
				walk(c, "")
				continue
			}
			if ok, err := dst.HasBlob(ctx, c); err != nil {
				t.Fatal(err)
			} else if ok {
				continue
			}
			rc, err := src.GetBlob(ctx, c, 0)
			if err != nil {
				t.Fatal(err)
			}
			err = dst.PutBlob(ctx, c, rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := dst.PutManifest(ctx, d, raw, r); err != nil {
			t.Fatal(err)
		}
	}
	walk(top, dstRef)
	return top
}

// OpenEndpoint opens loc through p, failing the test on error.
func OpenEndpoint(t testing.TB, p pluginapi.Plugin, transport, loc string, mode pluginapi.Mode) pluginapi.Endpoint {
	t.Helper()
	ep, err := p.Open(context.Background(), pluginapi.OpenRequest{Transport: transport, Location: loc, Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

// CommitClose commits ep when it is a Committer, then closes it.
func CommitClose(t testing.TB, ep pluginapi.Endpoint) {
	t.Helper()
	if c, ok := ep.(pluginapi.Committer); ok {
		if err := c.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := ep.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// ReadBlob reads a whole blob from offset off.
func ReadBlob(t testing.TB, src pluginapi.Source, d ocispec.Descriptor, off int64) []byte {
	t.Helper()
	rc, err := src.GetBlob(context.Background(), d, off)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
