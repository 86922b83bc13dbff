package manifest

import (
	"errors"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
)

const d3 = "sha256:3333333333333333333333333333333333333333333333333333333333333333"

// A Docker schema 2 manifest as docker/distribution and skopeo write it
// (descriptor fields in the order mediaType, size, digest).
const dockerRaw = `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",` +
	`"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"` + d1 + `"},` +
	`"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":3,"digest":"` + d2 + `"},` +
	`{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","size":4,"digest":"` + d3 + `","urls":["https://example.com/l"]}]}`

func mustParse(t *testing.T, raw string) *Manifest {
	t.Helper()
	m, err := Parse([]byte(raw), "")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestConvertImageBothWays(t *testing.T) {
	src := mustParse(t, dockerRaw)
	oci, err := Convert(src, FormatOCI, nil)
	if err != nil {
		t.Fatal(err)
	}
	if oci.MediaType != OCIManifest || oci.Config.MediaType != OCIConfig || oci.Config.Digest != src.Config.Digest {
		t.Fatalf("config not converted: %s %+v", oci.MediaType, oci.Config)
	}
	want := []string{OCILayerGz, ociNonDistGz}
	for i, l := range oci.Layers {
		if l.MediaType != want[i] || l.Digest != src.Layers[i].Digest || l.Size != src.Layers[i].Size {
			t.Fatalf("layer %d: %+v", i, l)
		}
	}
	if len(oci.Layers[1].URLs) != 1 {
		t.Fatal("foreign layer lost its urls")
	}
	if oci.Digest == src.Digest {
		t.Fatal("converted manifest kept the source digest")
	}
	// Back to schema 2: the bytes docker/distribution and skopeo write,
	// so the round trip gives the original digest.
	back, err := Convert(oci, FormatDocker, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(back.Raw) != dockerRaw || back.Digest != src.Digest {
		t.Fatalf("round trip changed the manifest:\n%s\n%s", back.Raw, dockerRaw)
	}
}

func TestConvertKeepsWhatIsInFormat(t *testing.T) {
	src := mustParse(t, dockerRaw)
	if m, err := Convert(src, FormatDocker, nil); err != nil || m != src {
		t.Fatalf("conversion to its own format rewrote it: %v", err)
	}
	idx := mustParse(t, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"`+d1+`","size":2,"platform":{"os":"linux","architecture":"amd64"}}]}`)
	if m, err := Convert(idx, FormatOCI, idx.Manifests); err != nil || m != idx {
		t.Fatalf("index with unchanged entries rewritten: %v", err)
	}
}

func TestConvertIndex(t *testing.T) {
	src := mustParse(t, `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","annotations":{"a":"b"},"manifests":[`+
		`{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"`+d1+`","size":2,"platform":{"os":"linux","architecture":"arm64","variant":"v8"},"annotations":{"x":"y"}}]}`)
	entries := []ocispec.Descriptor{{MediaType: DockerManifest, Digest: d2, Size: 7}}
	list, err := Convert(src, FormatDocker, entries)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[` +
		`{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":7,"digest":"` + d2 + `","annotations":{"x":"y"},"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}`
	if string(list.Raw) != want {
		t.Fatalf("manifest list:\n%s\nwant\n%s", list.Raw, want)
	}
	back, err := Convert(list, FormatOCI, []ocispec.Descriptor{{MediaType: OCIManifest, Digest: d3, Size: 9}})
	if err != nil {
		t.Fatal(err)
	}
	if back.MediaType != OCIIndex || back.Manifests[0].Digest != d3 || back.Manifests[0].Platform.Variant != "v8" || back.Manifests[0].Annotations["x"] != "y" {
		t.Fatalf("index: %s", back.Raw)
	}
	if _, err := Convert(src, FormatDocker, nil); err == nil || !strings.Contains(err.Error(), "entry 0") {
		t.Fatalf("an OCI manifest entry in a manifest list: %v", err)
	}
	if _, err := Convert(src, FormatDocker, entries[:0]); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("entries of the wrong length: %v", err)
	}
}

func TestConvertRefusals(t *testing.T) {
	tests := []struct{ name, raw, want string }{
		{"zstd layer", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + d1 + `","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"` + d2 + `","size":3}]}`, "layer 0"},
		{"subject", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + d1 + `","size":2},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"` + d3 + `","size":1}}`, "subject"},
		{"artifact config", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.example.config+json","digest":"` + d1 + `","size":2},"layers":[]}`, "not an image configuration"},
		{"entry without platform", `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"` + d1 + `","size":2}]}`, "no platform"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Convert(mustParse(t, tt.raw), FormatDocker, nil)
			if !errors.Is(err, core.ErrUnsupported) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want an unsupported error naming %q", err, tt.want)
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	for _, s := range []string{"oci", "v2s2"} {
		if f, err := ParseFormat(s); err != nil || string(f) != s {
			t.Fatalf("%s: %v", s, err)
		}
	}
	if _, err := ParseFormat("v2s1"); !errors.Is(err, core.ErrUnsupported) {
		t.Fatalf("v2s1: %v", err)
	}
	if _, err := ParseFormat("docker"); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("docker: %v", err)
	}
}
