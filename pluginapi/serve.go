package pluginapi

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

const (
	// EnvPluginLogLevel sets a plugin's log level (trace, debug, info, warn,
	// error, off); the default is warn.
	EnvPluginLogLevel = "STEVEDORE_PLUGIN_LOG_LEVEL"
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
	gp := &GRPCPlugin{Impl: p, dataPlane: os.Getenv(EnvDataPlane) != "grpc"}
	go watchParent(logger, gp)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{ProtocolVersion: {PluginName: gp}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(maxRecvMsgSize))
			return grpc.NewServer(opts...)
		},
		Logger: logger,
	})
	// plugin.Serve returns when the host asked the plugin to stop (and exits
	// by itself on a misconfiguration it has reported).
	closeOpen(gp)
	os.Exit(0)
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
