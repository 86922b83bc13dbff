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
