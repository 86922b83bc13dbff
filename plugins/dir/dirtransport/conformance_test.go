package dirtransport

import (
	"path/filepath"
	"testing"

	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

func TestConformance(t *testing.T) {
	transporttest.Run(t, transporttest.Harness{
		Plugin:        New(nil),
		Transport:     Transport,
		NewLocation:   func(t *testing.T) string { return filepath.Join(t.TempDir(), "img") },
		NoTags:        true,
		SingleImage:   true,
		WriteThenRead: true,
	})
}
