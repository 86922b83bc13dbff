package host_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/plugins/docker/registry"
)

// A copy between two registries served by one plugin has the plugin copy
// each blob from one to the other by itself (copy-blob): the host opens no
// blob stream, the destination registry checks each digest, and a byte
// flipped in transit fails the copy naming the blob, leaving no tag.
func TestCopyBetweenRegistriesInPlugin(t *testing.T) {
	ctx := context.Background()
	a := registrytest.Start(t, registrytest.Options{})
	b := registrytest.Start(t, registrytest.Options{})
	img := a.Seed("r", "v1", 2, 300_000)
	spy := spyOn(registry.New(), "")
	h, opts := dockerHost(t, spy)
	src := "docker://" + a.Ref("r") + ":v1"

	res, err := h.Copy(ctx, src, "docker://"+b.Ref("m")+":v1", opts)
	if err != nil {
		t.Fatal(err)
	}
	n := len(img.Blobs)
	if res.BlobsCopied != n || spy.n("CopyBlobFrom") != n || spy.n("GetBlob") != 0 {
		t.Fatalf("copied %d blobs, %d by the plugin, %d streams through the host; want %d, %d, 0", res.BlobsCopied, spy.n("CopyBlobFrom"), spy.n("GetBlob"), n, n)
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

// dockerHost returns a host whose docker transport is p, in process, and
// the options of a copy between plain-HTTP registries.
func dockerHost(t *testing.T, p pluginapi.Plugin) (*host.Host, host.CopyOptions) {
	t.Helper()
	h, err := host.New(host.Options{SearchPath: []string{t.TempDir()}, InProcess: []pluginapi.Plugin{p}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	insecure := map[string]string{"tls-verify": "false"}
	return h, host.CopyOptions{SrcOptions: insecure, DstOptions: insecure}
}
