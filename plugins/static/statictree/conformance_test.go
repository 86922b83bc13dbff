package statictree

import (
	"testing"

	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

func TestConformance(t *testing.T) {
	transporttest.Run(t, transporttest.Harness{
		Plugin:        New(nil),
		Transport:     Transport,
		NewLocation:   func(t *testing.T) string { return t.TempDir() + ":lib/app" },
		WriteThenRead: true,
	})
}
