package manifest

import (
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
)

// FuzzParse: manifests come from registries and files we do not trust.
// Parse never panics; what it accepts is a manifest or index whose
// descriptors all validate, with the digest of the bytes given; what it
// refuses is a one-line error wrapping a core sentinel.
func FuzzParse(f *testing.F) {
	const d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, s := range []string{
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + d + `","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + d + `","size":3}]}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d + `","size":9,"platform":{"os":"linux","architecture":"arm64"}}]}`,
		`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"` + d + `","size":1},"layers":[]}`,
		`{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"` + d + `","size":1},"layers":[],"subject":{"mediaType":"a/b","digest":"` + d + `","size":1}}`,
		`{"schemaVersion":1,"fsLayers":[]}`,
		`{}`, `[]`, `null`, ``,
	} {
		for _, mt := range []string{"", OCIManifest, OCIIndex, DockerManifest, DockerList} {
			f.Add([]byte(s), mt)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte, mediaType string) {
		m, err := Parse(raw, mediaType)
		if err != nil {
			if !errors.Is(err, core.ErrInvalid) && !errors.Is(err, core.ErrUnsupported) && !errors.Is(err, core.ErrTooLarge) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error is not one line: %q", err)
			}
			return
		}
		if !IsManifest(m.MediaType) || m.Digest != digest.FromBytes(raw) {
			t.Fatalf("accepted %q with digest %s", m.MediaType, m.Digest)
		}
		children := append(append([]ocispec.Descriptor{}, m.Layers...), m.Manifests...)
		if IsImageManifest(m.MediaType) {
			children = append(children, m.Config)
		}
		if m.Subject != nil {
			children = append(children, *m.Subject)
		}
		for _, c := range children {
			if err := ValidateDescriptor(c); err != nil {
				t.Fatalf("accepted an invalid descriptor: %v", err)
			}
		}
		if IsIndex(m.MediaType) != (m.Manifests != nil) {
			t.Fatalf("%s with manifests %v", m.MediaType, m.Manifests)
		}
		// What parses converts to either format or says why in one line;
		// a conversion keeps every blob and entry where it was.
		for _, f := range []Format{FormatOCI, FormatDocker} {
			c, err := Convert(m, f, nil)
			if err != nil {
				if !errors.Is(err, core.ErrUnsupported) || strings.ContainsAny(err.Error(), "\n\r") {
					t.Fatalf("convert to %s: %v", f, err)
				}
				continue
			}
			if c.MediaType != f.MediaType(m.IsIndex()) || c.Config.Digest != m.Config.Digest || c.Config.Size != m.Config.Size ||
				len(c.Layers) != len(m.Layers) || len(c.Manifests) != len(m.Manifests) {
				t.Fatalf("convert to %s changed the tree: %s", f, c.Raw)
			}
			for i := range c.Layers {
				if c.Layers[i].Digest != m.Layers[i].Digest || c.Layers[i].Size != m.Layers[i].Size {
					t.Fatalf("convert to %s moved layer %d", f, i)
				}
			}
			if again, err := Convert(c, f, nil); err != nil || again != c {
				t.Fatalf("converting %s to %s again rewrote it: %v", f, f, err)
			}
		}
	})
}
