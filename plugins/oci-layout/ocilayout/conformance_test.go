package ocilayout

import (
	"path/filepath"
	"testing"

	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

func newLocation(t *testing.T) string { return filepath.Join(t.TempDir(), "layout") }

func TestConformanceInProcess(t *testing.T) {
	transporttest.Run(t, transporttest.Harness{
		Plugin:      New(),
		Transport:   TransportName,
		NewLocation: newLocation,
	})
}
