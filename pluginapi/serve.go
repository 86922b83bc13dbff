package pluginapi

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	transportv1 "github.com/stevedore-oci/stevedore/pluginapi/proto/v1"
)

const (
	// EnvPluginLogLevel sets a plugin's log level (trace, debug, info, warn,
	// error, off); the default is warn.
	EnvPluginLogLevel = "STEVEDORE_PLUGIN_LOG_LEVEL"
	// EnvPluginDebug, set when a plugin binary is run by hand (not by a
	// host), makes Serve run it for a debugger and print the
	// EnvReattach setting a host needs to use it.
	EnvPluginDebug = "STEVEDORE_PLUGIN_DEBUG"
	// EnvReattach tells a host to use already running plugin processes
	// instead of starting their binaries: a JSON object from plugin name
	// (the binary name without "stevedore-transport-") to ReattachInfo.
	EnvReattach = "STEVEDORE_PLUGIN_REATTACH"
	// binaryPrefix starts a plugin binary's file name.
	binaryPrefix = "stevedore-transport-"
	// maxRecvMsgSize lifts go-plugin's 4 MiB default, which a 1 MiB chunk
	// stream and large manifests or tag lists must fit under with room.
	maxRecvMsgSize = 16 << 20
	// parentPollInterval is how often a plugin checks that its host lives.
	parentPollInterval = 250 * time.Millisecond
	// closeTimeout bounds the cleanup of endpoints left open when the plugin
	// stops (go-plugin kills a plugin 2 s after asking it to stop).
	closeTimeout = 1500 * time.Millisecond
)

var pluginLogger = sync.OnceValue(func() hclog.Logger {
	level := hclog.LevelFromString(os.Getenv(EnvPluginLogLevel))
	if level == hclog.NoLevel {
		level = hclog.Warn
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       "plugin",
		Level:      level,
		Output:     os.Stderr,
		JSONFormat: true, // go-plugin re-logs JSON lines under the plugin's name
	})
})

// Logger is the plugin process's logger: JSON on stderr, which the host
// re-logs, at the level from STEVEDORE_PLUGIN_LOG_LEVEL (default warn).
// Transports should log through it and never write to stdout.
func Logger() hclog.Logger { return pluginLogger() }

// Serve runs p as a Stevedore transport plugin. It is what a plugin's main
// calls, and it does not return: the process exits when the host stops it,
// or on its own when the host process dies (its parent changes). Either way
// the endpoints still open are closed first, so unfinished writes are
// discarded rather than left half done.
//
// Nothing may be written to stdout before Serve: go-plugin's handshake is
// the first stdout line.
func Serve(p Plugin) {
	logger := Logger()
	if os.Getenv(EnvPluginDebug) != "" && os.Getenv(Handshake.MagicCookieKey) == "" {
		serveDebug(p, logger) // does not return
	}
	versions := servedVersions()
	if hostVersions, ok := os.LookupEnv("PLUGIN_PROTOCOL_VERSIONS"); ok && !shareVersion(versions, parseVersions(hostVersions)) {
		// go-plugin would announce its lowest version and the host could
		// only name that one: name them all, in place of the handshake.
		fmt.Fprintf(os.Stdout, "%s: plugin speaks %s; host offers %s\n", mismatchTag, formatVersions(versions), hostVersions)
		os.Exit(1)
	}
	gp := &GRPCPlugin{Impl: p, dataPlane: os.Getenv(EnvDataPlane) != "grpc"}
	go watchParent(logger, gp)
	sets := make(map[int]plugin.PluginSet, len(versions))
	for _, v := range versions {
		// One implementation serves every version while there is one
		// proto; a new proto version adds its own server here.
		sets[v] = plugin.PluginSet{PluginName: gp}
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: sets,
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(maxRecvMsgSize),
				grpc.ChainUnaryInterceptor(countUnary), grpc.ChainStreamInterceptor(countStream))
			return grpc.NewServer(opts...)
		},
		Logger: logger,
	})
	// plugin.Serve returns when the host asked the plugin to stop (and exits
	// by itself on a misconfiguration it has reported). Calls the host gave
	// up on are cancelled by now: let them finish removing what they half
	// wrote (the host waits up to 2 s for the process to end).
	waitCalls(handlerGrace)
	closeOpen(gp)
	os.Exit(0)
}

// inflight counts the transport calls being served.
var inflight atomic.Int64

// handlerGrace bounds how long a stopping plugin waits for its calls.
const handlerGrace = 1500 * time.Millisecond

// transportMethods prefixes the gRPC methods of the transport service (not
// go-plugin's own: its stdio and broker streams last as long as the
// process).
var transportMethods = "/" + transportv1.Transport_ServiceDesc.ServiceName + "/"

func countUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if strings.HasPrefix(info.FullMethod, transportMethods) {
		inflight.Add(1)
		defer inflight.Add(-1)
	}
	return handler(ctx, req)
}

func countStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if strings.HasPrefix(info.FullMethod, transportMethods) {
		inflight.Add(1)
		defer inflight.Add(-1)
	}
	return handler(srv, ss)
}

// waitCalls waits until no transport call is being served, at most grace.
func waitCalls(grace time.Duration) {
	deadline := time.Now().Add(grace)
	for inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// serveDebug runs the plugin on its own, for a debugger: it prints the
// STEVEDORE_PLUGIN_REATTACH setting under which a host uses this process
// instead of starting the binary, and serves until interrupted.
func serveDebug(p Plugin, logger hclog.Logger) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	gp := &GRPCPlugin{Impl: p, dataPlane: os.Getenv(EnvDataPlane) != "grpc"}
	versions := servedVersions()
	reattach := make(chan *plugin.ReattachConfig, 1)
	closed := make(chan struct{})
	go plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		// The host does not negotiate with a reattached plugin: it speaks
		// the version written in the reattach setting, our newest.
		VersionedPlugins: map[int]plugin.PluginSet{versions[len(versions)-1]: {PluginName: gp}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(maxRecvMsgSize))...)
		},
		Logger: logger,
		Test:   &plugin.ServeTestConfig{Context: ctx, ReattachConfigCh: reattach, CloseCh: closed},
	})
	var rc *plugin.ReattachConfig
	select {
	case rc = <-reattach:
	case <-closed:
		os.Exit(1)
	}
	name := strings.TrimPrefix(filepath.Base(os.Args[0]), binaryPrefix)
	b, _ := json.Marshal(map[string]ReattachInfo{name: {
		Protocol: string(rc.Protocol), ProtocolVersion: rc.ProtocolVersion, Pid: rc.Pid,
		Network: rc.Addr.Network(), Address: rc.Addr.String(),
	}})
	fmt.Fprintf(os.Stdout, "Plugin %s is serving for a debugger. In the shell that runs stevedore:\n\n\texport %s='%s'\n\nCtrl-C stops it.\n", name, EnvReattach, b)
	<-closed
	closeOpen(gp)
	os.Exit(0)
}

func shareVersion(a, b []int) bool {
	for _, v := range a {
		if slices.Contains(b, v) {
			return true
		}
	}
	return false
}

func closeOpen(gp *GRPCPlugin) {
	if s := gp.server.Load(); s != nil {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		s.closeAll(ctx)
	}
}

// watchParent exits the process when the host is gone: go-plugin's gRPC
// server only stops on the host's request, so a SIGKILLed host would leave
// its plugins running forever.
func watchParent(logger hclog.Logger, gp *GRPCPlugin) {
	ppid := os.Getppid()
	if ppid == 1 {
		return // started by init: there is no host to watch
	}
	t := time.NewTicker(parentPollInterval)
	defer t.Stop()
	for range t.C {
		if os.Getppid() == ppid {
			continue
		}
		logger.Warn("host process is gone; exiting", "host_pid", ppid)
		closeOpen(gp)
		os.Exit(2)
	}
}
