package registry

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

// TestConformance runs the transport conformance kit against docker-registry
// over TLS with bearer-token auth (the mode with the most moving parts).
func TestConformance(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{TLS: true, Auth: registrytest.AuthToken})
	var n atomic.Int64
	transporttest.Run(t, transporttest.Harness{
		Plugin:    testPlugin(),
		Transport: "docker",
		NewLocation: func(t *testing.T) string {
			return reg.Ref(fmt.Sprintf("kit/repo%d", n.Add(1)))
		},
		Options: baseOptions(reg),
	})
}
