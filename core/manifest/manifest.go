package manifest

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/content"
)

// Manifest is a parsed manifest or index. Raw holds the exact bytes it was
// parsed from; Digest is computed from them.
type Manifest struct {
	MediaType    string
	Raw          []byte
	Digest       digest.Digest
	Config       ocispec.Descriptor   // image manifests only
	Layers       []ocispec.Descriptor // image manifests only
	Manifests    []ocispec.Descriptor // indexes only
	Subject      *ocispec.Descriptor
	ArtifactType string
	Annotations  map[string]string
}

// wire is the union of the fields of every supported format.
type wire struct {
	SchemaVersion *int                 `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	ArtifactType  string               `json:"artifactType"`
	Config        *ocispec.Descriptor  `json:"config"`
	Layers        []ocispec.Descriptor `json:"layers"`
	Manifests     []ocispec.Descriptor `json:"manifests"`
	Subject       *ocispec.Descriptor  `json:"subject"`
	Annotations   map[string]string    `json:"annotations"`
	FSLayers      json.RawMessage      `json:"fsLayers"`
}

func invalidf(format string, a ...any) error {
	return fmt.Errorf("invalid manifest: "+format+": %w", append(a, core.ErrInvalid)...)
}

// ErrSchema1 is returned for Docker schema 1 manifests.
var ErrSchema1 = fmt.Errorf("docker schema 1 manifests are unsupported; convert the image to schema 2 or OCI first (for example push it again with a current docker or buildah): %w", core.ErrUnsupported)

// DetectMediaType returns the media type declared in raw, or infers it from
// the fields present when the body does not declare one (OCI allows that).
func DetectMediaType(raw []byte) (string, error) {
	var w wire
	if err := json.Unmarshal(raw, &w); err != nil {
		return "", invalidf("not a JSON object: %v", err)
	}
	return detect(&w)
}

func detect(w *wire) (string, error) {
	if w.SchemaVersion != nil && *w.SchemaVersion == 1 || w.FSLayers != nil {
		return DockerSchema1, nil
	}
	if w.MediaType != "" {
		return w.MediaType, nil
	}
	switch {
	case w.Manifests != nil && w.Config == nil:
		return OCIIndex, nil
	case w.Config != nil && w.Manifests == nil:
		return OCIManifest, nil
	}
	return "", invalidf("cannot tell whether this is a manifest or an index (no mediaType, config or manifests)")
}

// Parse parses and validates raw. mediaType is the type the transport
// reported (Content-Type, index entry); "" means detect from the body. A
// declared type that contradicts the body is an error.
func Parse(raw []byte, mediaType string) (*Manifest, error) {
	if len(raw) > content.MaxManifestSize {
		return nil, fmt.Errorf("manifest is %d bytes, over the %d byte limit: %w", len(raw), content.MaxManifestSize, core.ErrTooLarge)
	}
	var w wire
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, invalidf("not a JSON object: %v", err)
	}
	body, err := detect(&w)
	if err != nil {
		return nil, err
	}
	if IsSchema1(body) || IsSchema1(mediaType) {
		return nil, ErrSchema1
	}
	if w.MediaType != "" && mediaType != "" && w.MediaType != mediaType {
		return nil, invalidf("body declares mediaType %q but it was served as %q", w.MediaType, mediaType)
	}
	mt := body
	if w.MediaType == "" && mediaType != "" {
		mt = mediaType
	}
	if !IsManifest(mt) {
		return nil, fmt.Errorf("manifest media type %q: %w", mt, core.ErrUnsupported)
	}
	if w.SchemaVersion == nil || *w.SchemaVersion != 2 {
		return nil, invalidf("schemaVersion must be 2")
	}
	m := &Manifest{
		MediaType:    mt,
		Raw:          raw,
		Digest:       digest.FromBytes(raw),
		Subject:      w.Subject,
		ArtifactType: w.ArtifactType,
		Annotations:  w.Annotations,
	}
	if IsIndex(mt) {
		if w.Config != nil || w.Layers != nil {
			return nil, invalidf("an index must not have config or layers")
		}
		if w.Manifests == nil {
			return nil, invalidf("index has no manifests array")
		}
		for i, d := range w.Manifests {
			if err := ValidateDescriptor(d); err != nil {
				return nil, invalidf("manifests[%d]: %v", i, err)
			}
			if d.Platform != nil && (d.Platform.OS == "" || d.Platform.Architecture == "") {
				return nil, invalidf("manifests[%d]: platform needs os and architecture", i)
			}
		}
		m.Manifests = w.Manifests
	} else {
		if w.Manifests != nil {
			return nil, invalidf("an image manifest must not have manifests")
		}
		if w.Config == nil {
			return nil, invalidf("image manifest has no config")
		}
		if err := ValidateDescriptor(*w.Config); err != nil {
			return nil, invalidf("config: %v", err)
		}
		if mt == DockerManifest && w.Layers == nil {
			return nil, invalidf("docker manifest has no layers array")
		}
		for i, d := range w.Layers {
			if err := ValidateDescriptor(d); err != nil {
				return nil, invalidf("layers[%d]: %v", i, err)
			}
		}
		m.Config, m.Layers = *w.Config, w.Layers
	}
	if m.Subject != nil {
		if err := ValidateDescriptor(*m.Subject); err != nil {
			return nil, invalidf("subject: %v", err)
		}
	}
	return m, nil
}

// validMediaType checks RFC 6838 type/subtype (restricted-name: an
// alphanumeric then up to 126 of [A-Za-z0-9!#$&^_.+-] on each side);
// parameters are not allowed in a descriptor's mediaType. Checked by hand:
// the equivalent regular expression costs ~290 KB to compile at start-up.
func validMediaType(s string) bool {
	typ, sub, ok := strings.Cut(s, "/")
	return ok && restrictedName(typ) && restrictedName(sub)
}

func restrictedName(s string) bool {
	if len(s) == 0 || len(s) > 127 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("!#$&^_.+-", rune(c))) {
			return false
		}
	}
	return true
}

// ValidateDescriptor checks the fields the image-spec requires of a
// descriptor: a media type, a well-formed digest of a known algorithm and a
// non-negative size.
func ValidateDescriptor(d ocispec.Descriptor) error {
	if d.MediaType == "" {
		return fmt.Errorf("descriptor %s has no mediaType", d.Digest)
	}
	if !validMediaType(d.MediaType) {
		return fmt.Errorf("descriptor mediaType %q is malformed", d.MediaType)
	}
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("descriptor digest %q: %v", d.Digest, err)
	}
	if d.Size < 0 {
		return fmt.Errorf("descriptor %s has negative size %d", d.Digest, d.Size)
	}
	return nil
}

// IsIndex reports whether m is an index or manifest list.
func (m *Manifest) IsIndex() bool { return IsIndex(m.MediaType) }

// Descriptor describes m itself.
func (m *Manifest) Descriptor() ocispec.Descriptor {
	d := ocispec.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: int64(len(m.Raw))}
	if m.ArtifactType != "" {
		d.ArtifactType = m.ArtifactType
	} else if !m.IsIndex() && m.Config.MediaType != OCIConfig && m.Config.MediaType != DockerConfig {
		// An artifact's type defaults to its config's media type.
		d.ArtifactType = m.Config.MediaType
	}
	return d
}

// Children returns the descriptors m points to: config then layers for an
// image manifest, the entries of an index. The subject is not a child.
func (m *Manifest) Children() []ocispec.Descriptor {
	if m.IsIndex() {
		return m.Manifests
	}
	out := make([]ocispec.Descriptor, 0, 1+len(m.Layers))
	out = append(out, m.Config)
	return append(out, m.Layers...)
}

// Descriptor computes the descriptor of raw bytes with the given media type
// (detected from the body when empty).
func Descriptor(raw []byte, mediaType string) (ocispec.Descriptor, error) {
	if mediaType == "" {
		mt, err := DetectMediaType(raw)
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		mediaType = mt
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(raw), Size: int64(len(raw))}, nil
}

// IsNonDistributable reports whether a layer must not be pushed to another
// registry (Docker foreign layers and the deprecated OCI non-distributable
// types).
func IsNonDistributable(mt string) bool {
	switch mt {
	case DockerForeignLayer,
		"application/vnd.oci.image.layer.nondistributable.v1.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd":
		return true
	}
	return false
}
