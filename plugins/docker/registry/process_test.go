package registry

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/pluginapi"
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

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// TestConformanceOverGRPC runs the kit against the plugin binary, as the
// host uses it: errors and blobs cross the process boundary.
func TestConformanceOverGRPC(t *testing.T) {
	bin := buildPlugin(t)
	defer os.RemoveAll(filepath.Dir(bin))
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthBasic})

	logs := &lockedBuffer{}
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + os.TempDir()}
	cfg := pluginapi.ClientConfig(cmd, hclog.New(&hclog.LoggerOptions{Name: "host", Output: logs, Level: hclog.Debug}))
	cfg.SkipHostEnv = true
	c := plugin.NewClient(cfg)
	t.Cleanup(func() {
		c.Kill()
		if t.Failed() {
			t.Logf("plugin logs:\n%s", logs.b.String())
		}
	})
	rp, err := pluginapi.Dispense(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rp.Close() })
	var n atomic.Int64
	transporttest.Run(t, transporttest.Harness{
		Plugin:      rp,
		Transport:   "docker",
		NewLocation: func(*testing.T) string { return reg.Ref(fmt.Sprintf("grpc/repo%d", n.Add(1))) },
		Options:     baseOptions(reg),
	})
}
