package registry

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

var (
	buildOnce sync.Once
	pluginBin string
	buildErr  error
)

// buildPlugin builds stevedore-transport-docker once per test binary.
func buildPlugin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "stvd-docker-")
		if err != nil {
			buildErr = err
			return
		}
		pluginBin = filepath.Join(dir, "stevedore-transport-docker")
		if out, err := exec.Command("go", "build", "-o", pluginBin, "..").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return pluginBin
}

// TestConformanceOverGRPC runs the kit against the plugin binary, as the
// host uses it: errors and blobs cross the process boundary.
func TestConformanceOverGRPC(t *testing.T) {
	bin := buildPlugin(t)
	defer os.RemoveAll(filepath.Dir(bin))
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
