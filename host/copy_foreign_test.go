package host_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/plugins/archive/archive"
	"github.com/stevedore-oci/stevedore/plugins/dir/dirtransport"
	"github.com/stevedore-oci/stevedore/plugins/oci-layout/ocilayout"
)

// A foreign (non-distributable) layer, as in Windows base images, is
// usually not in the source: a copy to a layout, an archive or dir: leaves
// it to its URLs, as a registry push does, and the manifest keeps its
// digest. One the source holds is copied (an air-gapped copy needs it).
func TestCopyForeignLayer(t *testing.T) {
	ctx := context.Background()
	for _, held := range []bool{false, true} {
		src := filepath.Join(t.TempDir(), "src")
		s, err := layout.Create(src)
		if err != nil {
			t.Fatal(err)
		}
		put := func(mt string, b []byte) ocispec.Descriptor {
			d := ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}
			if err := s.WriteBlobBytes(ctx, d, b); err != nil {
				t.Fatal(err)
			}
			return d
		}
		foreignBytes := []byte("a foreign layer's bytes, served elsewhere")
		foreign := ocispec.Descriptor{MediaType: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
			Digest: digest.FromBytes(foreignBytes), Size: int64(len(foreignBytes)), URLs: []string{"https://example.invalid/layer"}}
		if held {
			put(foreign.MediaType, foreignBytes)
		}
		cfg := put(ocispec.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"windows","rootfs":{"type":"layers","diff_ids":[]}}`))
		own := put(ocispec.MediaTypeImageLayerGzip, []byte("our own layer"))
		raw, err := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
			Config: cfg, Layers: []ocispec.Descriptor{foreign, own}})
		if err != nil {
			t.Fatal(err)
		}
		m := put(ocispec.MediaTypeImageManifest, raw)
		if err := s.Tag(ctx, m, "v1"); err != nil {
			t.Fatal(err)
		}

		h, err := host.New(host.Options{SearchPath: []string{t.TempDir()}, InProcess: []pluginapi.Plugin{
			ocilayout.New(), archive.New(nil), dirtransport.New(nil)}})
		if err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		for _, dst := range []string{"oci:" + filepath.Join(out, "l") + ":v1", "oci-archive:" + filepath.Join(out, "a.tar") + ":v1", "dir:" + filepath.Join(out, "d")} {
			res, err := h.Copy(ctx, "oci:"+src+":v1", dst, host.CopyOptions{})
			if err != nil || res.Descriptor.Digest != m.Digest {
				t.Fatalf("held %v: copy to %s: %v; want the manifest %s kept", held, dst, err, m.Digest)
			}
			raw, err := h.RawManifest(ctx, dst, nil)
			if err != nil || digest.FromBytes(raw) != m.Digest {
				t.Fatalf("held %v: %s reads back %v", held, dst, err)
			}
		}
		_, err = os.Stat(filepath.Join(out, "l", "blobs", "sha256", foreign.Digest.Encoded()))
		if held != (err == nil) {
			t.Fatalf("source holds the foreign layer: %v; the copy holds it: %v", held, err == nil)
		}
		h.Close()
	}
}
