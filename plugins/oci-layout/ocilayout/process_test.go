package ocilayout

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

// pluginBin is stevedore-transport-oci, built once by TestMain.
var pluginBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stvd-oci-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pluginBin = filepath.Join(dir, "stevedore-transport-oci")
	out, err := exec.Command("go", "build", "-o", pluginBin, "..").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build stevedore-transport-oci: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startPlugin runs the plugin binary and returns the host-side adapter.
func startPlugin(t *testing.T, opts ...pluginapi.DispenseOption) *pluginapi.RemotePlugin {
	t.Helper()
	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "host", Output: logs, Level: hclog.Debug})
	cmd := exec.Command(pluginBin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + os.TempDir()}
	cfg := pluginapi.ClientConfig(cmd, logger)
	cfg.SkipHostEnv = true
	c := plugin.NewClient(cfg)
	t.Cleanup(func() {
		c.Kill()
		if t.Failed() {
			t.Logf("plugin logs:\n%s", logs.String())
		}
	})
	rp, err := pluginapi.Dispense(c, opts...)
	if err != nil {
		t.Fatalf("dispense stevedore-transport-oci: %v", err)
	}
	t.Cleanup(func() { _ = rp.Close() })
	if got := strings.Join(rp.Transports(), ","); got != TransportName {
		t.Fatalf("remote Transports() = %q", got)
	}
	return rp
}

func TestConformanceOverGRPC(t *testing.T) {
	for _, plane := range []struct {
		name string
		opts []pluginapi.DispenseOption
	}{
		{"unix-socket", nil},
		{"grpc-stream", []pluginapi.DispenseOption{pluginapi.WithGRPCStreams()}},
	} {
		t.Run(plane.name, func(t *testing.T) {
			transporttest.Run(t, transporttest.Harness{
				Plugin:      startPlugin(t, plane.opts...),
				Transport:   TransportName,
				NewLocation: newLocation,
			})
		})
	}
}
