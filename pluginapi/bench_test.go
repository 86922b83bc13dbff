package pluginapi

import (
	"context"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BenchmarkDataPlane reads a 256 MiB blob from a plugin process over the unix
// socket data plane and over the gRPC stream fallback. The plugin serves a
// synthetic pattern and the host does not hash, so only the transport is
// measured. Run: go test -run '^$' -bench DataPlane -benchtime=3x ./pluginapi/
func BenchmarkDataPlane(b *testing.B) {
	const size = 256 << 20
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromString("synthetic"), Size: size}
	for _, pl := range planes {
		b.Run(pl.name, func(b *testing.B) {
			rp := startPlugin(b, nil, pl.opts...)
			ep := open(b, rp, "bench", ModeRead, map[string]string{"synthetic": "true"})
			buf := make([]byte, blobChunkSize)
			ctx := context.Background()
			b.SetBytes(size)
			b.ResetTimer()
			for range b.N {
				rc, err := ep.GetBlob(ctx, desc, 0)
				if err != nil {
					b.Fatal(err)
				}
				var n int64
				for {
					m, err := rc.Read(buf)
					n += int64(m)
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				rc.Close()
				if n != size {
					b.Fatalf("read %d bytes, want %d", n, size)
				}
			}
		})
	}
}
