package pluginapi

import "runtime/debug"

// Versioner may be implemented by a Plugin to report its version in Info.
// Without it the version stamped at link time is used, else the main
// module's version from the build info.
type Versioner interface {
	Version() string
}

// linkVersion is a plugin binary's version stamped at link time, for plugins
// without a Versioner:
//
//	go build -ldflags "-X github.com/stevedore-oci/stevedore/pluginapi.linkVersion=1.2.3" ./cmd/my-plugin
var linkVersion string

// PluginInfo is what a plugin says about itself (the Info RPC).
type PluginInfo struct {
	// Transports served, e.g. ["oci"].
	Transports []string
	// Version of the plugin binary, for diagnostics only.
	Version string
	// ProtocolVersions the plugin speaks.
	ProtocolVersions []int
	// DataPlane is true when the plugin moves blob bytes over the host's
	// unix socket (GetBlob/PutBlob); otherwise the gRPC stream fallback is
	// used.
	DataPlane bool
}

func pluginVersion(p Plugin) string {
	if v, ok := p.(Versioner); ok {
		return v.Version()
	}
	if linkVersion != "" {
		return linkVersion
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.Main.Version
	}
	return ""
}
