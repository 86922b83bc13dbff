package manifest

import (
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types this package knows.
const (
	OCIManifest = ocispec.MediaTypeImageManifest
	OCIIndex    = ocispec.MediaTypeImageIndex
	OCIConfig   = ocispec.MediaTypeImageConfig
	OCILayer    = ocispec.MediaTypeImageLayer
	OCILayerGz  = ocispec.MediaTypeImageLayerGzip
	OCILayerZst = ocispec.MediaTypeImageLayerZstd
	OCIEmpty    = ocispec.MediaTypeEmptyJSON

	DockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	DockerList         = "application/vnd.docker.distribution.manifest.list.v2+json"
	DockerConfig       = "application/vnd.docker.container.image.v1+json"
	DockerLayer        = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	DockerForeignLayer = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	DockerSchema1      = "application/vnd.docker.distribution.manifest.v1+json"
	DockerSchema1JWS   = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// Accept is the list of manifest media types a client should accept, most
// preferred first.
var Accept = []string{OCIIndex, OCIManifest, DockerList, DockerManifest}

// IsIndex reports whether mt is a multi-platform index or manifest list.
func IsIndex(mt string) bool { return mt == OCIIndex || mt == DockerList }

// IsImageManifest reports whether mt is a single-image manifest.
func IsImageManifest(mt string) bool { return mt == OCIManifest || mt == DockerManifest }

// IsManifest reports whether mt is any manifest type this package parses.
func IsManifest(mt string) bool { return IsIndex(mt) || IsImageManifest(mt) }

// IsSchema1 reports whether mt is a Docker schema 1 manifest.
func IsSchema1(mt string) bool { return mt == DockerSchema1 || mt == DockerSchema1JWS }
