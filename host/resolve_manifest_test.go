package host_test

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// lyingPlugin serves "lie:" endpoints whose ResolveManifest gives bytes
// that are not the ones its descriptor names.
type lyingPlugin struct{}

func (lyingPlugin) Transports() []string { return []string{"lie"} }
func (lyingPlugin) Open(context.Context, pluginapi.OpenRequest) (pluginapi.Endpoint, error) {
	return lyingSource{}, nil
}

type lyingSource struct{}

var lyingRaw = []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`)

func lyingDesc() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(lyingRaw), Size: int64(len(lyingRaw))}
}

func (lyingSource) Close(context.Context) error { return nil }
func (lyingSource) Resolve(context.Context, string) (ocispec.Descriptor, error) {
	return lyingDesc(), nil
}
func (lyingSource) GetManifest(context.Context, ocispec.Descriptor) ([]byte, error) {
	return lyingRaw, nil
}
func (lyingSource) GetBlob(context.Context, ocispec.Descriptor, int64) (io.ReadCloser, error) {
	return nil, core.ErrNotFound
}
func (lyingSource) ResolveManifest(context.Context, string) (ocispec.Descriptor, []byte, error) {
	tampered := append([]byte(nil), lyingRaw...)
	tampered[len(tampered)-2] = ' '
	return lyingDesc(), tampered, nil
}

// The host checks the bytes a ResolveManifest gives against its
// descriptor, as it checks GetManifest's.
func TestResolveManifestBytesChecked(t *testing.T) {
	h, err := host.New(host.Options{SearchPath: []string{t.TempDir()}, InProcess: []pluginapi.Plugin{lyingPlugin{}}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	_, err = h.RawManifest(context.Background(), "lie:x", nil)
	if !errors.Is(err, core.ErrDigestMismatch) {
		t.Fatalf("RawManifest: %v, want a digest mismatch", err)
	}
	_, err = h.Inspect(context.Background(), "lie:x", host.InspectOptions{})
	if !errors.Is(err, core.ErrDigestMismatch) {
		t.Fatalf("Inspect: %v, want a digest mismatch", err)
	}
}
