package pluginapi

import (
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/stevedore-oci/stevedore/core"
)

// buildVersionedPlugin builds the mem test plugin offering the given
// protocol versions instead of ProtocolVersions.
func buildVersionedPlugin(t *testing.T, versions string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stevedore-plugin-mem")
	cmd := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X github.com/stevedore-oci/stevedore/pluginapi.servedProtocolVersions="+versions,
		"./internal/testplugin/cmd/stevedore-plugin-mem")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build plugin for protocol %s: %v\n%s", versions, err, out)
	}
	return bin
}

func dispenseBinary(t *testing.T, bin string) (*plugin.Client, *RemotePlugin, error) {
	t.Helper()
	logs := &syncBuffer{}
	cfg := ClientConfig(exec.Command(bin), hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}))
	cfg.SkipHostEnv = true
	c := plugin.NewClient(cfg)
	t.Cleanup(c.Kill)
	rp, err := Dispense(c)
	if rp != nil {
		t.Cleanup(func() { rp.Close() })
	}
	return c, rp, err
}

func TestProtocolNegotiation(t *testing.T) {
	if !slices.Equal(ProtocolVersions, []int{1}) {
		t.Skipf("test written for a host speaking [1], this one speaks %v", ProtocolVersions)
	}
	t.Run("no common version", func(t *testing.T) {
		c, _, err := dispenseBinary(t, buildVersionedPlugin(t, "7,9"))
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			t.Fatalf("Dispense of a protocol 7,9 plugin: %v, want a *ProtocolError", err)
		}
		if !slices.Equal(pe.PluginVersions, []int{7, 9}) || !slices.Equal(pe.HostVersions, []int{1}) {
			t.Fatalf("ProtocolError = %+v, want plugin [7 9], host [1]", pe)
		}
		if !errors.Is(err, core.ErrUnsupported) {
			t.Fatalf("%v does not wrap core.ErrUnsupported", err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "speaks version 7,9") || !strings.Contains(msg, "stevedore speaks 1") || strings.Contains(msg, "\n") {
			t.Fatalf("message %q does not name both version lists on one line", msg)
		}
		c.Kill()
		if !c.Exited() {
			t.Fatal("plugin process still running")
		}
	})
	t.Run("newest common version", func(t *testing.T) {
		c, rp, err := dispenseBinary(t, buildVersionedPlugin(t, "1,7"))
		if err != nil {
			t.Fatalf("Dispense of a protocol 1,7 plugin: %v", err)
		}
		if c.NegotiatedVersion() != 1 {
			t.Fatalf("negotiated %d, want 1", c.NegotiatedVersion())
		}
		if got := rp.Info().ProtocolVersions; !slices.Equal(got, []int{1, 7}) {
			t.Fatalf("Info().ProtocolVersions = %v, want [1 7]", got)
		}
	})
}

func TestProtocolErrorFromGoPlugin(t *testing.T) {
	// A plugin built with an SDK that predates the mismatch line: go-plugin
	// names only the version the plugin fell back to.
	err := errors.New("incompatible API version with plugin. Plugin version: 3, Client versions: [1]")
	pe := protocolError(err)
	if pe == nil || !slices.Equal(pe.PluginVersions, []int{3}) {
		t.Fatalf("protocolError(%q) = %+v", err, pe)
	}
	if protocolError(errors.New("plugin exited before we could connect")) != nil {
		t.Fatal("an unrelated start failure was taken for a version mismatch")
	}
}

// A plugin run by hand with STEVEDORE_PLUGIN_DEBUG prints the reattach
// setting; a host given it uses that process, and closing the host's client
// leaves the process running.
func TestReattachDebugMode(t *testing.T) {
	cmd := exec.Command(pluginBin)
	cmd.Env = []string{EnvPluginDebug + "=1", "GORACE=atexit_sleep_ms=0"}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var setting string
	buf := make([]byte, 4096)
	var got []byte
	for !strings.Contains(string(got), "Ctrl-C") {
		n, err := stdout.Read(buf)
		if err != nil {
			t.Fatalf("reading the debug banner: %v (got %q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
	for _, line := range strings.Split(string(got), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "export "+EnvReattach+"="); ok {
			setting = strings.Trim(v, "'")
		}
	}
	if setting == "" {
		t.Fatalf("no %s in the banner:\n%s", EnvReattach, got)
	}
	t.Setenv(EnvReattach, setting)
	// The binary is stevedore-plugin-mem: its name is the file name.
	if rc, err := Reattach("mem"); err != nil || rc != nil {
		t.Fatalf("Reattach of a name not in the setting = %v, %v", rc, err)
	}
	rc, err := Reattach("stevedore-plugin-mem")
	if err != nil || rc == nil || rc.Pid != cmd.Process.Pid {
		t.Fatalf("Reattach = %+v, %v; want pid %d", rc, err, cmd.Process.Pid)
	}
	for round := range 2 {
		cfg := ClientConfig(nil, hclog.NewNullLogger())
		cfg.Cmd, cfg.Reattach = nil, rc
		cfg.Plugins = cfg.VersionedPlugins[rc.ProtocolVersion]
		c := plugin.NewClient(cfg)
		rp, err := Dispense(c)
		if err != nil {
			t.Fatalf("round %d: dispense: %v", round, err)
		}
		ep := open(t, rp, "debug", ModeWrite, nil)
		if _, err := ep.ListTags(testCtx(t)); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		ep.Close(testCtx(t))
		rp.Close()
		c.Kill()
		if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
			t.Fatalf("round %d: the host's Kill stopped a process it did not start: %v", round, err)
		}
	}
	t.Setenv(EnvReattach, "{not json")
	if _, err := Reattach("x"); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("bad setting: %v", err)
	}
}
