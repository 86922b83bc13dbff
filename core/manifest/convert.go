package manifest

import (
	"encoding/json"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
)

// Format is a family of manifest media types a copy can write: OCI (image
// manifest and index) or Docker schema 2 (manifest and manifest list).
type Format string

// Formats, named as skopeo's --format names them.
const (
	FormatOCI    Format = "oci"
	FormatDocker Format = "v2s2"
)

// Docker layer media types without a constant of their own elsewhere.
const (
	dockerLayerTar        = "application/vnd.docker.image.rootfs.diff.tar"
	dockerForeignLayerTar = "application/vnd.docker.image.rootfs.foreign.diff.tar"
	ociNonDistTar         = "application/vnd.oci.image.layer.nondistributable.v1.tar"
	ociNonDistGz          = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
)

// ParseFormat reads a --format value.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case FormatOCI, FormatDocker:
		return Format(s), nil
	case "v2s1":
		return "", fmt.Errorf("manifest format %q: docker schema 1 is not written (use oci or v2s2): %w", s, core.ErrUnsupported)
	}
	return "", fmt.Errorf("manifest format %q: want oci or v2s2: %w", s, core.ErrInvalid)
}

// FormatOf returns the family of a manifest media type ("" for others).
func FormatOf(mediaType string) Format {
	switch mediaType {
	case OCIManifest, OCIIndex:
		return FormatOCI
	case DockerManifest, DockerList:
		return FormatDocker
	}
	return ""
}

// Other returns the family a registry refusing f may take instead.
func (f Format) Other() Format {
	if f == FormatDocker {
		return FormatOCI
	}
	return FormatDocker
}

// MediaType returns the media type of f for an index (or manifest list)
// or an image manifest.
func (f Format) MediaType(index bool) string {
	switch {
	case f == FormatDocker && index:
		return DockerList
	case f == FormatDocker:
		return DockerManifest
	case index:
		return OCIIndex
	}
	return OCIManifest
}

// layer media types in each direction; a type missing from a map has no
// equivalent in the other format.
var (
	layerToOCI = map[string]string{
		DockerLayer:           OCILayerGz,
		dockerLayerTar:        OCILayer,
		DockerForeignLayer:    ociNonDistGz,
		dockerForeignLayerTar: ociNonDistTar,
	}
	layerToDocker = map[string]string{
		OCILayerGz:    DockerLayer,
		OCILayer:      dockerLayerTar,
		ociNonDistGz:  DockerForeignLayer,
		ociNonDistTar: dockerForeignLayerTar,
	}
)

// Convert returns m written in format f. Blobs are not touched: a
// conversion rewrites media types in the manifest, so the config and
// layers keep their digests, and the converted manifest has a new one.
//
// For an index, entries gives the descriptors its entries were written
// with (same order and length as m.Manifests; media type, digest and size
// are taken from it, platform and annotations from the original entry);
// nil means the entries are unchanged. m itself, bytes and digest, is
// returned when it is in f already and no entry changed.
//
// A conversion that would lose what identifies or locates content is
// refused: a subject or artifactType (Docker schema 2 has neither), an
// artifact's config, zstd layers or unknown layer types (into schema 2),
// index entries that are not image manifests or have no platform (a
// manifest list needs both). Annotations of a manifest or index converted
// to schema 2 are dropped (it has no such field; skopeo drops them too).
func Convert(m *Manifest, f Format, entries []ocispec.Descriptor) (*Manifest, error) {
	if entries != nil && len(entries) != len(m.Manifests) {
		return nil, fmt.Errorf("convert %s: %d entries for an index of %d: %w", m.Digest, len(entries), len(m.Manifests), core.ErrInvalid)
	}
	target := f.MediaType(m.IsIndex())
	if m.MediaType == target && !entriesChanged(m.Manifests, entries) {
		return m, nil
	}
	fail := func(format string, a ...any) (*Manifest, error) {
		return nil, fmt.Errorf("cannot convert %s %s to %s: "+format+": %w",
			append([]any{kind(m.MediaType), m.Digest, kind(target)}, append(a, core.ErrUnsupported)...)...)
	}
	if f == FormatDocker {
		if m.Subject != nil {
			return fail("it has a subject (%s)", m.Subject.Digest)
		}
		if m.ArtifactType != "" {
			return fail("it is an artifact (%s)", m.ArtifactType)
		}
	}
	var raw []byte
	var err error
	if m.IsIndex() {
		out := make([]ocispec.Descriptor, len(m.Manifests))
		for i, e := range m.Manifests {
			src := e.Digest // messages name the entry as m has it
			if entries != nil {
				e.MediaType, e.Digest, e.Size = entries[i].MediaType, entries[i].Digest, entries[i].Size
			}
			if f == FormatDocker {
				if e.MediaType != DockerManifest {
					return fail("entry %d (%s) is %s, not a Docker image manifest", i, src, e.MediaType)
				}
				if e.Platform == nil {
					return fail("entry %d (%s) has no platform", i, src)
				}
			}
			out[i] = e
		}
		if f == FormatDocker {
			raw, err = json.Marshal(dockerList(out))
		} else {
			idx := ocispec.Index{MediaType: target, Manifests: out, Subject: m.Subject, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
			idx.SchemaVersion = 2
			raw, err = json.Marshal(idx)
		}
	} else {
		config, layers := m.Config, make([]ocispec.Descriptor, len(m.Layers))
		switch {
		case f == FormatOCI && config.MediaType == DockerConfig:
			config.MediaType = OCIConfig
		case f == FormatDocker && config.MediaType == OCIConfig:
			config.MediaType = DockerConfig
		case f == FormatDocker && config.MediaType != DockerConfig:
			return fail("its config is %s, not an image configuration", config.MediaType)
		}
		table := layerToOCI
		if f == FormatDocker {
			table = layerToDocker
		}
		for i, l := range m.Layers {
			if mt, ok := table[l.MediaType]; ok {
				l.MediaType = mt
			} else if f == FormatDocker && !isDockerLayer(l.MediaType) {
				return fail("layer %d (%s) is %s, which Docker schema 2 cannot carry", i, l.Digest, l.MediaType)
			}
			layers[i] = l
		}
		if f == FormatDocker {
			raw, err = json.Marshal(dockerManifest(config, layers))
		} else {
			im := ocispec.Manifest{MediaType: target, Config: config, Layers: layers, Subject: m.Subject, ArtifactType: m.ArtifactType, Annotations: m.Annotations}
			im.SchemaVersion = 2
			raw, err = json.Marshal(im)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("convert %s: %v: %w", m.Digest, err, core.ErrInvalid)
	}
	return Parse(raw, target)
}

// isDockerLayer reports whether mt is a layer type of Docker schema 2.
func isDockerLayer(mt string) bool {
	_, ok := layerToOCI[mt]
	return ok
}

// entriesChanged reports whether entries rewrites any of an index's entries.
func entriesChanged(old, entries []ocispec.Descriptor) bool {
	if entries == nil {
		return false
	}
	for i := range old {
		if old[i].MediaType != entries[i].MediaType || old[i].Digest != entries[i].Digest || old[i].Size != entries[i].Size {
			return true
		}
	}
	return false
}

// kind names a manifest media type in messages.
func kind(mt string) string {
	switch mt {
	case OCIManifest:
		return "OCI image manifest"
	case OCIIndex:
		return "OCI index"
	case DockerManifest:
		return "Docker schema 2 manifest"
	case DockerList:
		return "Docker manifest list"
	}
	return mt
}

// Docker schema 2 as docker/distribution and containers/image write it:
// descriptors list mediaType, size, digest in that order, so that a
// manifest converted here has the bytes (and digest) skopeo's conversion
// gives. Descriptor annotations (eStargz's table-of-contents digests, for
// one), which docker/distribution's descriptors carry and skopeo drops, are
// kept: such a manifest differs from skopeo's.
type (
	dockerDescriptor struct {
		MediaType   string            `json:"mediaType"`
		Size        int64             `json:"size"`
		Digest      string            `json:"digest"`
		URLs        []string          `json:"urls,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	dockerPlatform struct {
		Architecture string   `json:"architecture"`
		OS           string   `json:"os"`
		OSVersion    string   `json:"os.version,omitempty"`
		OSFeatures   []string `json:"os.features,omitempty"`
		Variant      string   `json:"variant,omitempty"`
	}
	dockerEntry struct {
		dockerDescriptor
		Platform dockerPlatform `json:"platform"`
	}
	dockerManifestJSON struct {
		SchemaVersion int                `json:"schemaVersion"`
		MediaType     string             `json:"mediaType"`
		Config        dockerDescriptor   `json:"config"`
		Layers        []dockerDescriptor `json:"layers"`
	}
	dockerListJSON struct {
		SchemaVersion int           `json:"schemaVersion"`
		MediaType     string        `json:"mediaType"`
		Manifests     []dockerEntry `json:"manifests"`
	}
)

func toDocker(d ocispec.Descriptor) dockerDescriptor {
	return dockerDescriptor{MediaType: d.MediaType, Size: d.Size, Digest: d.Digest.String(), URLs: d.URLs, Annotations: d.Annotations}
}

func dockerManifest(config ocispec.Descriptor, layers []ocispec.Descriptor) dockerManifestJSON {
	out := dockerManifestJSON{SchemaVersion: 2, MediaType: DockerManifest, Config: toDocker(config), Layers: make([]dockerDescriptor, len(layers))}
	for i, l := range layers {
		out.Layers[i] = toDocker(l)
	}
	return out
}

func dockerList(entries []ocispec.Descriptor) dockerListJSON {
	out := dockerListJSON{SchemaVersion: 2, MediaType: DockerList, Manifests: make([]dockerEntry, len(entries))}
	for i, e := range entries {
		p := e.Platform
		out.Manifests[i] = dockerEntry{dockerDescriptor: toDocker(e), Platform: dockerPlatform{
			Architecture: p.Architecture, OS: p.OS, OSVersion: p.OSVersion, OSFeatures: p.OSFeatures, Variant: p.Variant}}
	}
	return out
}
