package registry

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

// buildPlugin builds stevedore-transport-docker into the test's temporary
// directory (per run: -count=2 must not find it removed).
func buildPlugin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stevedore-transport-docker")
	if out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	return bin
}

// TestConformanceOverGRPC runs the kit against the plugin binary, as the
// host uses it: errors and blobs cross the process boundary.
func TestConformanceOverGRPC(t *testing.T) {
	bin := buildPlugin(t)
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthBasic})

	rp := transporttest.StartPlugin(t, bin, []string{"HOME=" + t.TempDir()})
	var n atomic.Int64
	transporttest.Run(t, transporttest.Harness{
		Plugin:      rp,
		Transport:   "docker",
		NewLocation: func(*testing.T) string { return reg.Ref(fmt.Sprintf("grpc/repo%d", n.Add(1))) },
		Options:     baseOptions(reg),
	})
}
