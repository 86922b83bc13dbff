package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"

	"github.com/stevedore-oci/stevedore/pluginapi"
)

// envAllow lists the host environment variables a plugin may see. go-plugin
// would otherwise append the whole host environment after ours (and the last
// duplicate wins), so we pass SkipHostEnv and this explicit list.
var envAllow = []string{
	"HOME", "USER", "PATH", "TMPDIR", "LANG", "LC_ALL", "TZ",
	"XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME",
	"DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "CONTAINERS_REGISTRIES_CONF",
	"SSL_CERT_FILE", "SSL_CERT_DIR",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
}

// pluginEnv builds a plugin's environment from the allow-list plus every
// STEVEDORE_* variable.
func pluginEnv(socketDir string) []string {
	var env []string
	for _, k := range envAllow {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "STEVEDORE_") {
			env = append(env, kv)
		}
	}
	// A short directory keeps go-plugin's unix socket paths under the
	// ~104 byte limit.
	return append(env, "PLUGIN_UNIX_SOCKET_DIR="+socketDir)
}

// running is one launched plugin process.
type running struct {
	bin    PluginBinary
	client *plugin.Client
	remote *pluginapi.RemotePlugin
	info   pluginapi.PluginInfo
}

// launch starts a plugin binary and completes the handshake. The process is
// in its own process group (Ctrl-C reaches only the host, which shuts it
// down) and gets SIGKILL from the kernel if the host thread that started it
// dies.
func launch(ctx context.Context, bin PluginBinary, socketDir string, plane *pluginapi.DataPlane, logger hclog.Logger) (*running, error) {
	cmd := exec.Command(bin.Path)
	cmd.Env = pluginEnv(socketDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cfg := pluginapi.ClientConfig(cmd, logger.Named(bin.Name))
	cfg.SkipHostEnv = true
	cfg.StartTimeout = 20 * time.Second
	client := plugin.NewClient(cfg)
	fail := func(err error) (*running, error) {
		client.Kill()
		return nil, &PluginError{Plugin: bin.Name, Path: bin.Path, Err: err}
	}
	remote, err := pluginapi.Dispense(client, pluginapi.WithDataPlane(plane))
	if err != nil {
		return fail(err)
	}
	return &running{bin: bin, client: client, remote: remote, info: remote.Info()}, nil
}

// PluginError names the plugin a failure came from.
type PluginError struct {
	Plugin string
	Path   string
	Err    error
}

func (e *PluginError) Error() string {
	msg := e.Err.Error()
	if strings.Contains(msg, "Unrecognized remote plugin message") {
		msg = "it is not a Stevedore plugin or printed to stdout before the handshake (" + firstLine(msg) + ")"
	}
	return fmt.Sprintf("plugin %s (%s): %s", e.Plugin, e.Path, firstLine(msg))
}

func (e *PluginError) Unwrap() error { return e.Err }

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[:i]) + " ..."
	}
	return s
}

// errPluginExited is wrapped when a call fails because the plugin process
// is gone.
var errPluginExited = errors.New("plugin process exited")
