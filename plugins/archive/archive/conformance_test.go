package archive

import (
	"path/filepath"
	"testing"

	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

func TestConformanceOCIArchive(t *testing.T) {
	transporttest.Run(t, transporttest.Harness{
		Plugin:        New(nil),
		Transport:     OCIArchive,
		NewLocation:   func(t *testing.T) string { return filepath.Join(t.TempDir(), "a.tar") },
		WriteThenRead: true,
	})
}

// TestConformanceDockerArchive: docker-archive stores layers uncompressed
// (so it serves other manifests than written, with the same config), names
// images NAME:TAG and holds no index.
func TestConformanceDockerArchive(t *testing.T) {
	transporttest.Run(t, transporttest.Harness{
		Plugin:            New(nil),
		Transport:         DockerArchive,
		NewLocation:       func(t *testing.T) string { return filepath.Join(t.TempDir(), "d.tar") },
		WriteThenRead:     true,
		NoIndex:           true,
		ConvertsManifests: true,
		TagRef:            func(tag string) string { return "kit/" + tag + ":v1" },
	})
}
