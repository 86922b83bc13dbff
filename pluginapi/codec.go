package pluginapi

import (
	"encoding/json"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	transportv1 "github.com/stevedore-oci/stevedore/pluginapi/proto/v1"
)

// Descriptors cross the wire as the JSON of ocispec.Descriptor, so every
// field the spec defines (annotations, platform, artifactType, urls, data)
// survives without a parallel proto type to keep in sync.

func encodeDescriptor(d ocispec.Descriptor) ([]byte, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encode descriptor %s: %w", d.Digest, err)
	}
	return b, nil
}

func decodeDescriptor(b []byte) (ocispec.Descriptor, error) {
	var d ocispec.Descriptor
	if len(b) == 0 {
		return d, fmt.Errorf("descriptor missing: %w", core.ErrInvalid)
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("decode descriptor: %v: %w", err, core.ErrInvalid)
	}
	return d, nil
}

func encodeDescriptors(ds []ocispec.Descriptor) ([][]byte, error) {
	out := make([][]byte, 0, len(ds))
	for _, d := range ds {
		b, err := encodeDescriptor(d)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func decodeDescriptors(bs [][]byte) ([]ocispec.Descriptor, error) {
	out := make([]ocispec.Descriptor, 0, len(bs))
	for _, b := range bs {
		d, err := decodeDescriptor(b)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

func modeToProto(m Mode) transportv1.Mode {
	switch m {
	case ModeRead:
		return transportv1.Mode_MODE_READ
	case ModeWrite:
		return transportv1.Mode_MODE_WRITE
	}
	return transportv1.Mode_MODE_UNSPECIFIED
}

func modeFromProto(m transportv1.Mode) (Mode, error) {
	switch m {
	case transportv1.Mode_MODE_READ:
		return ModeRead, nil
	case transportv1.Mode_MODE_WRITE:
		return ModeWrite, nil
	}
	return 0, fmt.Errorf("open mode %v: %w", m, core.ErrInvalid)
}
