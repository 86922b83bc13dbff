package host_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/plugins/docker/registry"
)

// copySpy serves docker:// through the registry plugin, counting the blob
// streams the host opens and the copies the plugin makes by itself.
type copySpy struct {
	inner           pluginapi.Plugin
	streams, copies atomic.Int32
}

func (p *copySpy) Transports() []string { return p.inner.Transports() }

func (p *copySpy) Open(ctx context.Context, req pluginapi.OpenRequest) (pluginapi.Endpoint, error) {
	e, err := p.inner.Open(ctx, req)
	if err != nil {
		return nil, err
	}
	return &copySpyEndpoint{Endpoint: e, p: p}, nil
}

type copySpyEndpoint struct {
	pluginapi.Endpoint
	p *copySpy
}

func (e *copySpyEndpoint) Capabilities() []string { return pluginapi.Capabilities(e.Endpoint) }
func (e *copySpyEndpoint) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	return e.Endpoint.(pluginapi.Source).Resolve(ctx, ref)
}
func (e *copySpyEndpoint) GetManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	return e.Endpoint.(pluginapi.Source).GetManifest(ctx, desc)
}
func (e *copySpyEndpoint) GetBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	e.p.streams.Add(1)
	return e.Endpoint.(pluginapi.Source).GetBlob(ctx, desc, offset)
}
func (e *copySpyEndpoint) HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	return e.Endpoint.(pluginapi.Destination).HasBlob(ctx, desc)
}
func (e *copySpyEndpoint) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	return e.Endpoint.(pluginapi.Destination).PutBlob(ctx, desc, r)
}
func (e *copySpyEndpoint) PutManifest(ctx context.Context, desc ocispec.Descriptor, raw []byte, ref string) error {
	return e.Endpoint.(pluginapi.Destination).PutManifest(ctx, desc, raw, ref)
}
func (e *copySpyEndpoint) MountBlob(ctx context.Context, desc ocispec.Descriptor, from string) (bool, error) {
	return e.Endpoint.(pluginapi.Mounter).MountBlob(ctx, desc, from)
}
func (e *copySpyEndpoint) CopyBlobFrom(ctx context.Context, desc ocispec.Descriptor, from pluginapi.Endpoint, progress func(int64)) error {
	e.p.copies.Add(1)
	if f, ok := from.(*copySpyEndpoint); ok {
		from = f.Endpoint
	}
	return e.Endpoint.(pluginapi.BlobCopier).CopyBlobFrom(ctx, desc, from, progress)
}

// A copy between two registries served by one plugin has the plugin copy
// each blob from one to the other by itself (copy-blob): the host opens no
// blob stream, the destination registry checks each digest, and a byte
// flipped in transit fails the copy naming the blob, leaving no tag.
func TestCopyBetweenRegistriesInPlugin(t *testing.T) {
	ctx := context.Background()
	a := registrytest.Start(t, registrytest.Options{})
	b := registrytest.Start(t, registrytest.Options{})
	img := a.Seed("r", "v1", 2, 300_000)
	spy := &copySpy{inner: registry.New()}
	h, err := host.New(host.Options{SearchPath: []string{t.TempDir()}, InProcess: []pluginapi.Plugin{spy}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	insecure := map[string]string{"tls-verify": "false"}
	opts := host.CopyOptions{SrcOptions: insecure, DstOptions: insecure}
	src := "docker://" + a.Ref("r") + ":v1"

	res, err := h.Copy(ctx, src, "docker://"+b.Ref("m")+":v1", opts)
	if err != nil {
		t.Fatal(err)
	}
	n := len(img.Blobs)
	if res.BlobsCopied != n || spy.copies.Load() != int32(n) || spy.streams.Load() != 0 {
		t.Fatalf("copied %d blobs, %d by the plugin, %d streams through the host; want %d, %d, 0", res.BlobsCopied, spy.copies.Load(), spy.streams.Load(), n, n)
	}
	for d := range img.Blobs {
		if ok, err := b.HasBlob("m", d); !ok || err != nil {
			t.Fatalf("blob %s at the destination: %v %v", d, ok, err)
		}
	}
	if raw, _, err := b.GetManifest("m", "v1"); err != nil || string(raw) != string(img.ManifestRaw) {
		t.Fatalf("manifest at the destination: %v", err)
	}

	layer := img.Layers[0]
	a.AddFault(registrytest.Fault{Kind: registrytest.FlipByte, Match: registrytest.MatchBlobGet(layer.Digest), At: 1000})
	_, err = h.Copy(ctx, src, "docker://"+b.Ref("bad")+":v1", opts)
	if !errors.Is(err, core.ErrDigestMismatch) || !strings.Contains(err.Error(), layer.Digest.String()) {
		t.Fatalf("copy with a byte flipped in transit: %v, want a digest mismatch naming %s", err, layer.Digest)
	}
	if ok, _ := b.HasBlob("bad", layer.Digest); ok {
		t.Fatal("the corrupted blob became visible at the destination")
	}
	if _, _, err := b.GetManifest("bad", "v1"); err == nil {
		t.Fatal("the destination was tagged after a failed copy")
	}
}
