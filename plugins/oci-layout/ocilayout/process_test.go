package ocilayout

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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

// startPlugin runs the plugin binary and returns the host-side adapter.
func startPlugin(t *testing.T, opts ...pluginapi.DispenseOption) *pluginapi.RemotePlugin {
	t.Helper()
	rp := transporttest.StartPlugin(t, pluginBin, nil, opts...)
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
