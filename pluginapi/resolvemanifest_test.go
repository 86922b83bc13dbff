package pluginapi

import (
	"context"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"

	transportv1 "github.com/stevedore-oci/stevedore/pluginapi/proto/v1"
)

// oldResolver answers Resolve as a plugin built before with_manifest does
// (no raw), and GetManifest with body.
type oldResolver struct {
	transportv1.TransportClient
	desc      ocispec.Descriptor
	body      []byte
	manifests int
}

func (o *oldResolver) Resolve(_ context.Context, req *transportv1.ResolveRequest, _ ...grpc.CallOption) (*transportv1.ResolveResponse, error) {
	b, err := encodeDescriptor(o.desc)
	return &transportv1.ResolveResponse{DescriptorJson: b}, err
}

func (o *oldResolver) GetManifest(_ context.Context, req *transportv1.GetManifestRequest, _ ...grpc.CallOption) (*transportv1.GetManifestResponse, error) {
	o.manifests++
	return &transportv1.GetManifestResponse{Raw: o.body}, nil
}

// A plugin that leaves raw empty is asked with GetManifest.
func TestResolveManifestOldPlugin(t *testing.T) {
	raw := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	old := &oldResolver{desc: desc, body: raw}
	e := &RemoteEndpoint{p: &RemotePlugin{client: old}, name: "old:x", caps: []string{CapSource}}
	got, b, err := e.ResolveManifest(context.Background(), "v1")
	if err != nil || got.Digest != desc.Digest || string(b) != string(raw) || old.manifests != 1 {
		t.Fatalf("ResolveManifest = %v, %q, %v after %d GetManifest calls", got.Digest, b, err, old.manifests)
	}
}
