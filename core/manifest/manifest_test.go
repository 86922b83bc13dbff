package manifest

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/stevedore-oci/stevedore/core"
)

const (
	d1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	d2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		name, raw, served, wantType string
		children                    int
	}{
		{"oci manifest", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + d1 + `","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"` + d2 + `","size":3}]}`, "", OCIManifest, 2},
		{"oci manifest without mediaType", `{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + d1 + `","size":2},"layers":[]}`, "", OCIManifest, 1},
		{"served type used when body silent", `{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + d1 + `","size":2},"layers":[]}`, OCIManifest, OCIManifest, 1},
		{"oci index", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d1 + `","size":2,"platform":{"os":"linux","architecture":"amd64"}}]}`, OCIIndex, OCIIndex, 1},
		{"docker manifest", `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"` + d1 + `","size":2},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"` + d2 + `","size":3}]}`, DockerManifest, DockerManifest, 2},
		{"docker list", `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}`, "", DockerList, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.raw), tt.served)
			if err != nil {
				t.Fatal(err)
			}
			if m.MediaType != tt.wantType {
				t.Fatalf("type %s, want %s", m.MediaType, tt.wantType)
			}
			if len(m.Children()) != tt.children {
				t.Fatalf("children %d, want %d", len(m.Children()), tt.children)
			}
			if m.Digest != digest.FromString(tt.raw) || string(m.Raw) != tt.raw {
				t.Fatal("digest or raw bytes not kept")
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		name, raw, served string
		is                error
		msg               string
	}{
		{"not json", `{`, "", core.ErrInvalid, "not a JSON object"},
		{"schema1", `{"schemaVersion":1,"fsLayers":[]}`, "", core.ErrUnsupported, "schema 1"},
		{"schema1 served", `{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"` + d1 + `","size":1},"layers":[]}`, DockerSchema1JWS, core.ErrUnsupported, "schema 1"},
		{"bad digest", `{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"sha256:xyz","size":1},"layers":[]}`, "", core.ErrInvalid, "config"},
		{"negative size", `{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"` + d1 + `","size":-1},"layers":[]}`, "", core.ErrInvalid, "negative"},
		{"no media type in layer", `{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"` + d1 + `","size":1},"layers":[{"digest":"` + d2 + `","size":1}]}`, "", core.ErrInvalid, "layers[0]"},
		{"type contradiction", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`, OCIManifest, core.ErrInvalid, "served as"},
		{"wrong schemaVersion", `{"schemaVersion":3,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`, "", core.ErrInvalid, "schemaVersion"},
		{"index without manifests", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}`, "", core.ErrInvalid, "no manifests"},
		{"platform without os", `{"schemaVersion":2,"manifests":[{"mediaType":"a/b","digest":"` + d1 + `","size":1,"platform":{"architecture":"amd64"}}]}`, "", core.ErrInvalid, "platform"},
		{"unknown type", `{"schemaVersion":2,"mediaType":"text/plain","config":{"mediaType":"a/b","digest":"` + d1 + `","size":1}}`, "", core.ErrUnsupported, "text/plain"},
		{"too large", `{"x":"` + strings.Repeat("a", 4<<20) + `"}`, "", core.ErrTooLarge, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.raw), tt.served)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q, want %v containing %q", err, tt.is, tt.msg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func TestDescriptorArtifactType(t *testing.T) {
	raw := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.example.sbom","digest":"` + d1 + `","size":2},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d2 + `","size":10}}`
	m, err := Parse([]byte(raw), "")
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Descriptor().ArtifactType; got != "application/vnd.example.sbom" {
		t.Fatalf("artifactType %q", got)
	}
	if m.Subject == nil || m.Subject.Digest != d2 {
		t.Fatal("subject lost")
	}
}

// mediaTypeOracle is the grammar validMediaType checks, as a regexp.
var mediaTypeOracle = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$`)

func FuzzMediaType(f *testing.F) {
	for _, s := range []string{"", "a/b", OCIManifest, DockerLayer, "a/b/c", "/b", "a/", "a b/c", "a/b;x=y", "-a/b", "a/-b", strings.Repeat("a", 128) + "/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validMediaType(s), mediaTypeOracle.MatchString(s); got != want {
			t.Fatalf("validMediaType(%q) = %v, regexp says %v", s, got, want)
		}
	})
}
