package transporttest

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/stevedore-oci/stevedore/pluginapi"
)

// StartPlugin runs a built plugin binary the way the host does (a go-plugin
// child speaking gRPC, with only env as its environment plus PATH and
// TMPDIR) and returns the host-side adapter, so that Run can check a
// transport across the process boundary. The process is killed when the
// test ends, and its logs are printed if the test failed.
func StartPlugin(tb testing.TB, binary string, env []string, opts ...pluginapi.DispenseOption) *pluginapi.RemotePlugin {
	tb.Helper()
	logs := &LogBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "host", Output: logs, Level: hclog.Debug})
	cmd := exec.Command(binary)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + os.TempDir()}, env...)
	cfg := pluginapi.ClientConfig(cmd, logger)
	cfg.SkipHostEnv = true
	c := plugin.NewClient(cfg)
	tb.Cleanup(func() {
		c.Kill()
		if tb.Failed() {
			tb.Logf("plugin %s logs:\n%s", binary, logs.String())
		}
	})
	rp, err := pluginapi.Dispense(c, opts...)
	if err != nil {
		tb.Fatalf("start plugin %s: %v", binary, err)
	}
	tb.Cleanup(func() { _ = rp.Close() })
	return rp
}

// LogBuffer collects log output written from several goroutines (a host's or
// a plugin's hclog output in a test).
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
