package pluginapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/pluginapi/handshake"
	transportv1 "github.com/stevedore-oci/stevedore/pluginapi/proto/v1"
)

// PluginName is the name under which a transport is dispensed.
const PluginName = "transport"

// ProtocolVersion is the newest protocol version this package speaks.
const ProtocolVersion = 1

// ProtocolVersions lists every protocol version this package speaks, newest
// last. Each version has its own proto package (stevedore.transport.vN).
//
// Negotiation: the host offers all of these (go-plugin's
// PLUGIN_PROTOCOL_VERSIONS); a plugin serves the newest version both sides
// speak. When there is none, Serve prints one line naming the plugin's
// versions in place of the handshake and exits, and Dispense turns that into
// a *ProtocolError that names both lists.
var ProtocolVersions = handshake.ProtocolVersions

// servedProtocolVersions, when set at link time, replaces ProtocolVersions as
// the versions Serve offers:
//
//	go build -ldflags "-X github.com/stevedore-oci/stevedore/pluginapi.servedProtocolVersions=1,2" ./plugins/x
//
// It exists to build a plugin of another protocol generation in tests of
// version negotiation; a real plugin never sets it.
var servedProtocolVersions string

// servedVersions is what Serve offers and Info reports, ascending.
func servedVersions() []int {
	if servedProtocolVersions == "" {
		return slices.Clone(ProtocolVersions)
	}
	vs := parseVersions(servedProtocolVersions)
	if len(vs) == 0 {
		return slices.Clone(ProtocolVersions)
	}
	return vs
}

// parseVersions reads a comma-separated version list, skipping junk.
func parseVersions(s string) []int {
	var vs []int
	for _, f := range strings.Split(s, ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && !slices.Contains(vs, v) {
			vs = append(vs, v)
		}
	}
	slices.Sort(vs)
	return vs
}

func formatVersions(vs []int) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

// mismatchTag starts the line a plugin prints instead of the handshake when
// it shares no protocol version with its host. go-plugin reports an
// unrecognised first line verbatim, so the host learns every version the
// plugin speaks, not only the one go-plugin's fallback would announce.
const mismatchTag = "stevedore-plugin-protocol-mismatch"

// The patterns of the two mismatch messages, compiled when a start fails:
// every host and plugin process starts through this package.
var (
	mismatchRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(mismatchTag + `: plugin speaks ([0-9,]+)`)
	})
	// go-plugin's own message, from plugins whose SDK predates mismatchTag.
	goPluginMismatchRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`incompatible API version with plugin\. Plugin version: ([0-9]+)`)
	})
)

// ProtocolError is returned by Dispense when the plugin and the host have no
// protocol version in common. It wraps core.ErrUnsupported.
type ProtocolError struct {
	// PluginVersions are the versions the plugin speaks (for a plugin built
	// with an old SDK, only the one it announced).
	PluginVersions []int
	// HostVersions are the versions this host speaks (ProtocolVersions).
	HostVersions []int
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("incompatible plugin protocol: the plugin speaks version %s, this stevedore speaks %s; "+
		"rebuild the plugin against a matching pluginapi or use a matching stevedore",
		formatVersions(e.PluginVersions), formatVersions(e.HostVersions))
}

func (e *ProtocolError) Unwrap() error { return core.ErrUnsupported }

// protocolError recognises a failed start caused by a version mismatch.
func protocolError(err error) *ProtocolError {
	msg := err.Error()
	var vs []int
	if m := mismatchRE().FindStringSubmatch(msg); m != nil {
		vs = parseVersions(m[1])
	} else if m := goPluginMismatchRE().FindStringSubmatch(msg); m != nil {
		vs = parseVersions(m[1])
	} else {
		return nil
	}
	return &ProtocolError{PluginVersions: vs, HostVersions: slices.Clone(ProtocolVersions)}
}

// Handshake is shared by host and plugins; go-plugin refuses a peer whose
// cookie or protocol version differs. The cookie only keeps a plugin binary
// from being run by hand by mistake; it is not a security measure.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   handshake.CookieKey,
	MagicCookieValue: handshake.CookieValue,
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

// ReattachInfo locates a plugin process started by hand for a debugger (see
// EnvPluginDebug): what a host needs to use it.
type ReattachInfo struct {
	Protocol        string `json:"protocol"`
	ProtocolVersion int    `json:"protocolVersion"`
	Pid             int    `json:"pid"`
	Network         string `json:"network"`
	Address         string `json:"address"`
}

// Reattach returns the go-plugin reattach configuration for the plugin
// named name from EnvReattach, or nil when it names no such plugin. A
// reattached process is not the host's: stopping the host leaves it
// running.
func Reattach(name string) (*plugin.ReattachConfig, error) {
	v := os.Getenv(EnvReattach)
	if v == "" {
		return nil, nil
	}
	var all map[string]ReattachInfo
	if err := json.Unmarshal([]byte(v), &all); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", EnvReattach, err, core.ErrInvalid)
	}
	ri, ok := all[name]
	if !ok {
		return nil, nil
	}
	var addr net.Addr
	var err error
	switch ri.Network {
	case "unix":
		addr, err = net.ResolveUnixAddr("unix", ri.Address)
	case "tcp":
		addr, err = net.ResolveTCPAddr("tcp", ri.Address)
	default:
		err = fmt.Errorf("network %q", ri.Network)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: plugin %s: %v: %w", EnvReattach, name, err, core.ErrInvalid)
	}
	return &plugin.ReattachConfig{
		Protocol:        plugin.Protocol(ri.Protocol),
		ProtocolVersion: ri.ProtocolVersion,
		Addr:            addr,
		Pid:             ri.Pid,
		Test:            true, // the host must not kill it
	}, nil
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
		if pe := protocolError(err); pe != nil {
			return nil, pe
		}
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
		return nil, fmt.Errorf("plugin says it speaks protocol versions %s but negotiated %d: %w",
			formatVersions(info.ProtocolVersions), c.NegotiatedVersion(), core.ErrUnsupported)
	}
	if !info.DataPlane {
		rp.streams = true
	}
	return rp, nil
}
