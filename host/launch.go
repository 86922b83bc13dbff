package host

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"

	"github.com/stevedore-oci/stevedore/host/prestart"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// Timeouts of plugin calls. A plugin that stops answering must not hang
// the host: control calls (open, resolve, manifests, has-blob, tags, delete,
// close...) get a per-call deadline, and blob transfers are given up when no
// byte moves for the inactivity timeout (for the transfers a plugin makes
// by itself, PutBlobFileProgress, GetBlobToFile and CopyBlobFrom: no
// progress reported). Commit, PutBlobFile and CommitStagedBlob do bulk work
// inside the plugin with nothing to watch, so only cancellation bounds them.
const (
	// EnvCallTimeout overrides DefaultCallTimeout (a Go duration such as
	// "90s", or plain seconds; "0" or "off" disables it).
	EnvCallTimeout = "STEVEDORE_PLUGIN_CALL_TIMEOUT"
	// EnvIdleTimeout overrides DefaultIdleTimeout, in the same format.
	EnvIdleTimeout = "STEVEDORE_PLUGIN_IDLE_TIMEOUT"
	// DefaultCallTimeout bounds one control call to a plugin.
	DefaultCallTimeout = 2 * time.Minute
	// DefaultIdleTimeout bounds the time a blob transfer may go without a
	// byte moving while it waits on the plugin.
	DefaultIdleTimeout = time.Minute
	// startTimeout bounds a plugin's start and handshake.
	startTimeout = 20 * time.Second
)

// launchConfig is what every launch of one Host shares.
type launchConfig struct {
	pins        *Pins
	callTimeout time.Duration // <= 0: none
	idleTimeout time.Duration // <= 0: none
}

// newLaunchConfig resolves the launch settings of opts: a zero timeout
// means the environment's, else the default; a negative one disables it.
func newLaunchConfig(opts Options) (launchConfig, error) {
	call, err := timeoutSetting(opts.CallTimeout, EnvCallTimeout, DefaultCallTimeout)
	if err != nil {
		return launchConfig{}, err
	}
	idle, err := timeoutSetting(opts.IdleTimeout, EnvIdleTimeout, DefaultIdleTimeout)
	if err != nil {
		return launchConfig{}, err
	}
	return launchConfig{pins: opts.Pins, callTimeout: call, idleTimeout: idle}, nil
}

func timeoutSetting(opt time.Duration, env string, def time.Duration) (time.Duration, error) {
	if opt != 0 {
		return opt, nil
	}
	v := strings.TrimSpace(os.Getenv(env))
	switch v {
	case "":
		return def, nil
	case "0", "off", "none":
		return -1, nil
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q: want a duration such as 90s or 5m, or off", env, v)
	}
	return d, nil
}

// running is one launched plugin process.
type running struct {
	bin    PluginBinary
	cmd    *exec.Cmd // nil for a reattached process, which we never kill
	client *plugin.Client
	remote *guardedPlugin
	info   pluginapi.PluginInfo
}

// serves reports whether the process serves transport.
func (r *running) serves(transport string) bool {
	return slices.Contains(r.info.Transports, transport)
}

// kill stops the process (never one reattached by hand, which we did not
// start).
func (r *running) kill() {
	if r.cmd != nil && r.remote.g.abandoned.Load() {
		// Calls the host gave up on may still run in the plugin, removing
		// what they half wrote: ask it to stop, which waits for its
		// handlers (pluginapi.Serve). go-plugin's Kill sends that request
		// without a deadline (a stopped or wedged plugin never answers),
		// so it is waited for stopGrace, then the process is killed, which
		// ends the request. Otherwise nothing is under way and the kill is
		// at once.
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			r.client.Kill()
		}()
		select {
		case <-stopped:
		case <-time.After(stopGrace):
		}
		r.remote.Close()
		killGroup(r.cmd)
		select {
		case <-stopped:
		case <-time.After(stopGrace):
		}
		return
	}
	r.remote.Close()
	killGroup(r.cmd)
	r.client.Kill()
}

// stopGrace bounds the wait for a plugin asked to stop.
const stopGrace = 2 * time.Second

// killGroup kills a plugin and every process it started: it runs in a
// process group of its own, and a child left alive would hold its output
// pipes open, so that waiting for the plugin would wait for the child.
func killGroup(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
}

// launch starts a plugin binary and completes the handshake. A pinned
// binary is hashed first and refused when its sum differs; go-plugin hashes
// it again just before starting it. The process is in its own process group
// (Ctrl-C reaches only the host, which shuts it down) and gets SIGKILL from
// the kernel if the host thread that started it dies. An unpinned binary
// the CLI started ahead (package prestart) with the same environment is
// used instead of a new process.
func launch(ctx context.Context, bin PluginBinary, socketDir string, plane *pluginapi.DataPlane, logger hclog.Logger, lc launchConfig) (*running, error) {
	reattach, err := pluginapi.Reattach(bin.Name)
	if err != nil {
		return nil, &PluginError{Plugin: bin.Name, Path: bin.Path, Err: err}
	}
	var sum []byte
	if reattach == nil {
		if sum, err = lc.pins.check(bin); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(bin.Path)
	cmd.Env = prestart.Env(socketDir)
	cmd.SysProcAttr = prestart.ProcAttr()
	// A process the plugin started may outlive it holding its output
	// pipes: waiting for the plugin must not wait for that process.
	cmd.WaitDelay = time.Second
	cfg := pluginapi.ClientConfig(cmd, lifecycleLogger{logger.Named(bin.Name)})
	cfg.SkipHostEnv = true
	cfg.StartTimeout = startTimeout
	// A process started ahead of the host (package prestart) serves if it
	// runs this binary with the environment go-plugin is about to give
	// it; never for a pinned binary, which must be hashed before it runs.
	var early *prestart.Proc
	var refused atomic.Value // the variable that differed
	if reattach == nil {
		early = prestart.Take(bin.Path)
	}
	if early != nil && sum != nil {
		early.Kill()
		early.Reap()
		early = nil
	}
	if early != nil {
		base := cmd.Env
		// What killGroup needs of the process: it is not ours to Wait.
		cmd = &exec.Cmd{Path: early.Path, Process: early.Process}
		cfg.Cmd = nil
		// go-plugin makes a socket directory for a runner; the process
		// already has one, this one stays empty.
		cfg.UnixSocketConfig = &plugin.UnixSocketConfig{TempDir: socketDir}
		cfg.RunnerFunc = func(_ hclog.Logger, spec *exec.Cmd, _ string) (runner.Runner, error) {
			// spec is a blank command with go-plugin's variables.
			if k := early.Differs(append(slices.Clone(base), spec.Env...)); k != "" {
				refused.Store(k)
				return nil, fmt.Errorf("the process started ahead has another %s", k)
			}
			logger.Debug("using the plugin process started ahead", "plugin", bin.Name, "pid", early.Process.Pid)
			return adopted{early}, nil
		}
	}
	if sum != nil {
		// A fresh hash per client: SecureConfig writes into it.
		cfg.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	if reattach != nil {
		// A process run by hand under a debugger: use it, do not start
		// the binary, do not check its pin.
		logger.Warn("using a plugin process started by hand ("+pluginapi.EnvReattach+")", "plugin", bin.Name, "pid", reattach.Pid)
		cfg.Cmd, cfg.Reattach = nil, reattach
		// go-plugin does not negotiate on reattach: give it the set of
		// the version written in the setting.
		cfg.Plugins = cfg.VersionedPlugins[reattach.ProtocolVersion]
		if cfg.Plugins == nil {
			return nil, &PluginError{Plugin: bin.Name, Path: bin.Path, Err: &pluginapi.ProtocolError{
				PluginVersions: []int{reattach.ProtocolVersion}, HostVersions: pluginapi.ProtocolVersions}}
		}
	}
	client := plugin.NewClient(cfg)
	fail := func(err error) (*running, error) {
		if reattach == nil {
			killGroup(cmd)
		}
		client.Kill()
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			// The file changed between our hash and go-plugin's.
			actual, _ := FileSHA256(bin.Path)
			expected, _ := lc.pins.For(bin)
			err = &ChecksumError{Expected: expected, Actual: actual, PinFile: lc.pins.File}
		}
		return nil, &PluginError{Plugin: bin.Name, Path: bin.Path, Err: err}
	}
	// The handshake does not watch ctx: wait for it in the background, and
	// on cancellation leave it to finish (or fail) and be killed.
	type dispensed struct {
		remote *pluginapi.RemotePlugin
		err    error
	}
	done := make(chan dispensed, 1)
	go func() {
		remote, err := pluginapi.Dispense(client, pluginapi.WithDataPlane(plane))
		done <- dispensed{remote, err}
	}()
	var d dispensed
	select {
	case d = <-done:
	case <-ctx.Done():
		go func() {
			<-done
			fail(ctx.Err())
			if refused.Load() != nil {
				early.Reap() // go-plugin never waits for a process it refused
			}
		}()
		return nil, &PluginError{Plugin: bin.Name, Path: bin.Path, Err: fmt.Errorf("start: %w", ctx.Err())}
	}
	remote, err := d.remote, d.err
	if k, ok := refused.Load().(string); ok {
		// Not the process the host would start: start its own.
		fail(err)
		early.Reap()
		logger.Debug("not using the plugin process started ahead", "plugin", bin.Name, "differs", k)
		return launch(ctx, bin, socketDir, plane, logger, lc)
	}
	if err != nil {
		return fail(err)
	}
	g := &guard{bin: bin, client: client, call: lc.callTimeout, idle: lc.idleTimeout}
	var own *exec.Cmd
	if reattach == nil {
		own = cmd
	}
	return &running{bin: bin, cmd: own, client: client, remote: &guardedPlugin{RemotePlugin: remote, g: g}, info: remote.Info()}, nil
}

// lifecycleLogger is go-plugin's logger for one plugin. go-plugin reports
// a plugin's exit and a forced kill as errors and warnings; the host's
// own error says what happened (once, on one line), so those drop to debug.
// The plugin's own log lines, re-logged under a Named logger, pass as they
// are.
type lifecycleLogger struct{ hclog.Logger }

var quietLifecycle = map[string]bool{
	"plugin process exited":            true,
	"plugin failed to exit gracefully": true,
}

func (l lifecycleLogger) Error(msg string, args ...interface{}) {
	if quietLifecycle[msg] {
		l.Logger.Debug(msg, args...)
		return
	}
	l.Logger.Error(msg, args...)
}

func (l lifecycleLogger) Warn(msg string, args ...interface{}) {
	if quietLifecycle[msg] {
		l.Logger.Debug(msg, args...)
		return
	}
	l.Logger.Warn(msg, args...)
}

// Named is the logger go-plugin re-logs the plugin's own lines with (it
// names it after the binary): those lines come under the plugin's name
// alone, without the module and timestamp fields go-plugin adds to each (a
// warning read "...: @module=plugin timestamp=2026-...").
func (l lifecycleLogger) Named(string) hclog.Logger { return pluginLines{l.Logger} }

// pluginLines logs a plugin's lines without go-plugin's bookkeeping fields.
type pluginLines struct{ hclog.Logger }

// bookkeeping are the fields go-plugin adds to a plugin's log line.
var bookkeeping = map[string]bool{"@module": true, "timestamp": true}

func dropBookkeeping(args []interface{}) []interface{} {
	out := args[:0:0]
	for i := 0; i+1 < len(args); i += 2 {
		if k, ok := args[i].(string); ok && bookkeeping[k] {
			continue
		}
		out = append(out, args[i], args[i+1])
	}
	if len(args)%2 == 1 {
		out = append(out, args[len(args)-1])
	}
	return out
}

func (p pluginLines) Log(level hclog.Level, msg string, args ...interface{}) {
	p.Logger.Log(level, msg, dropBookkeeping(args)...)
}
func (p pluginLines) Trace(msg string, args ...interface{}) {
	p.Logger.Trace(msg, dropBookkeeping(args)...)
}
func (p pluginLines) Debug(msg string, args ...interface{}) {
	p.Logger.Debug(msg, dropBookkeeping(args)...)
}
func (p pluginLines) Info(msg string, args ...interface{}) {
	p.Logger.Info(msg, dropBookkeeping(args)...)
}
func (p pluginLines) Warn(msg string, args ...interface{}) {
	p.Logger.Warn(msg, dropBookkeeping(args)...)
}
func (p pluginLines) Error(msg string, args ...interface{}) {
	p.Logger.Error(msg, dropBookkeeping(args)...)
}

// PluginError names the plugin a failure came from.
type PluginError struct {
	Plugin string
	Path   string
	Err    error
}

func (e *PluginError) Error() string {
	var inner *PluginError
	if errors.As(e.Err, &inner) && inner.Path == e.Path {
		// Already named, with what happened: say it once.
		return inner.Error()
	}
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
