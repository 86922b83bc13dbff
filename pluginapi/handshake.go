package pluginapi

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/stevedore-oci/stevedore/core"
	transportv1 "github.com/stevedore-oci/stevedore/pluginapi/proto/v1"
)

// PluginName is the name under which a transport is dispensed.
const PluginName = "transport"

// ProtocolVersion is the newest protocol version this package speaks.
const ProtocolVersion = 1

// ProtocolVersions lists every protocol version this package speaks, newest
// last. Each version has its own proto package (stevedore.transport.vN).
var ProtocolVersions = []int{1}

// Handshake is shared by host and plugins; go-plugin refuses a peer whose
// cookie or protocol version differs. The cookie only keeps a plugin binary
// from being run by hand by mistake; it is not a security measure.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "STEVEDORE_PLUGIN",
	MagicCookieValue: "b1f3c6d2-stevedore-transport-7e4a9c05",
}

// VersionedPlugins is the host's plugin map, by protocol version.
var VersionedPlugins = map[int]plugin.PluginSet{
	1: {PluginName: &GRPCPlugin{}},
}

// GRPCPlugin adapts a Plugin to go-plugin's gRPC transport. Impl is set in
// the plugin process and nil in the host.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Plugin

	// dataPlane enables GetBlob/PutBlob over the host's socket (plugin side).
	dataPlane bool
	// server is kept so Serve can close endpoints when the host is gone.
	server atomic.Pointer[grpcServer]
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the transport service (plugin side).
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return fmt.Errorf("stevedore plugin: no Plugin to serve")
	}
	srv := newGRPCServer(p.Impl, p.dataPlane)
	p.server.Store(srv)
	transportv1.RegisterTransportServer(s, srv)
	return nil
}

// GRPCClient returns a *RemotePlugin (host side). Dispense completes it.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (interface{}, error) {
	return &RemotePlugin{client: transportv1.NewTransportClient(cc)}, nil
}

// ClientConfig is the go-plugin client configuration for launching a
// transport plugin: Stevedore's handshake and plugin map, gRPC only, no
// AutoMTLS (the plugin is a child process on a private unix socket). The
// caller adds environment, SkipHostEnv, process attributes and timeouts.
func ClientConfig(cmd *exec.Cmd, logger hclog.Logger) *plugin.ClientConfig {
	versioned := make(map[int]plugin.PluginSet, len(VersionedPlugins))
	for v, set := range VersionedPlugins {
		versioned[v] = set
	}
	return &plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: versioned,
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           logger,
		AutoMTLS:         false,
	}
}

// DispenseOption adjusts the client adapter made by Dispense.
type DispenseOption func(*RemotePlugin)

// WithDataPlane makes the plugin use dp (shared with other plugins, owned by
// the caller) instead of a data plane of its own.
func WithDataPlane(dp *DataPlane) DispenseOption {
	return func(r *RemotePlugin) { r.plane = dp }
}

// WithGRPCStreams forces the gRPC stream fallback for blob bytes, as
// STEVEDORE_DATAPLANE=grpc does.
func WithGRPCStreams() DispenseOption {
	return func(r *RemotePlugin) { r.streams = true }
}

// Dispense connects to a started (or startable) plugin client, asks the
// plugin for its Info and checks the protocol version. The returned
// RemotePlugin must be closed (it may own a data-plane socket); closing it
// does not stop the plugin process.
func Dispense(c *plugin.Client, opts ...DispenseOption) (*RemotePlugin, error) {
	rpc, err := c.Client()
	if err != nil {
		return nil, fmt.Errorf("start plugin: %w", err)
	}
	raw, err := rpc.Dispense(PluginName)
	if err != nil {
		return nil, fmt.Errorf("dispense plugin: %w", err)
	}
	rp, ok := raw.(*RemotePlugin)
	if !ok {
		return nil, fmt.Errorf("dispense plugin: got %T, want *RemotePlugin: %w", raw, core.ErrUnsupported)
	}
	if os.Getenv(EnvDataPlane) == "grpc" {
		rp.streams = true
	}
	for _, o := range opts {
		o(rp)
	}
	info, err := rp.fetchInfo(context.Background())
	if err != nil {
		return nil, fmt.Errorf("plugin info: %w", err)
	}
	if !slices.Contains(info.ProtocolVersions, c.NegotiatedVersion()) {
		return nil, fmt.Errorf("plugin speaks protocol versions %v, negotiated %d: %w",
			info.ProtocolVersions, c.NegotiatedVersion(), core.ErrUnsupported)
	}
	if !info.DataPlane {
		rp.streams = true
	}
	return rp, nil
}
