package pluginapi

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// pluginBin is the in-memory test plugin, built once by TestMain.
var pluginBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stvd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pluginBin = filepath.Join(dir, "stevedore-plugin-mem")
	args := []string{"build", "-o", pluginBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./internal/testplugin/cmd/stevedore-plugin-mem")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build test plugin: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects the host logger's output, which includes the plugin's
// stderr re-logged by go-plugin.
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

// startPlugin launches the test plugin as a real process with env as its
// whole environment and returns the dispensed client adapter.
func startPlugin(tb testing.TB, env []string, opts ...DispenseOption) *RemotePlugin {
	tb.Helper()
	logs := &syncBuffer{}
	tb.Cleanup(func() {
		out := logs.String()
		if strings.Contains(out, "DATA RACE") {
			tb.Errorf("data race in the plugin process:\n%s", out)
		} else if tb.Failed() && out != "" {
			tb.Logf("plugin logs:\n%s", out)
		}
	})
	logger := hclog.New(&hclog.LoggerOptions{Name: "host", Output: logs, Level: hclog.Debug})
	cmd := exec.Command(pluginBin)
	// The race runtime sleeps a second at exit by default.
	cmd.Env = append([]string{"GORACE=atexit_sleep_ms=0"}, env...)
	cfg := ClientConfig(cmd, logger)
	cfg.SkipHostEnv = true
	c := plugin.NewClient(cfg)
	tb.Cleanup(c.Kill)
	rp, err := Dispense(c, opts...)
	if err != nil {
		tb.Fatalf("dispense: %v", err)
	}
	tb.Cleanup(func() {
		if err := rp.Close(); err != nil {
			tb.Errorf("close remote plugin: %v", err)
		}
	})
	return rp
}

// planes are the two blob paths every blob test runs over.
var planes = []struct {
	name string
	opts []DispenseOption
}{
	{"unix-socket", nil},
	{"grpc-stream", []DispenseOption{WithGRPCStreams()}},
}

func open(tb testing.TB, rp *RemotePlugin, location string, mode Mode, options map[string]string) *RemoteEndpoint {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ep, err := rp.OpenRemote(ctx, OpenRequest{Transport: "mem", Location: location, Mode: mode, Options: options})
	if err != nil {
		tb.Fatalf("open mem:%s: %v", location, err)
	}
	tb.Cleanup(func() { _ = ep.Close(context.Background()) })
	return ep
}

func randomBlob(size int, seed uint64) ([]byte, ocispec.Descriptor) {
	b := make([]byte, size)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = r.Read(b)
	return b, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(b), Size: int64(size)}
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}
