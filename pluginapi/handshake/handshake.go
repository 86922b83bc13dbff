// Package handshake holds the plain values of the go-plugin handshake
// between the Stevedore host and its transport plugins (the cookie and the
// protocol versions) and makes their socket directories: what starting a
// plugin process takes, without go-plugin, gRPC or the rest of pluginapi,
// whose package initialisation costs milliseconds. host/prestart starts a
// command's plugins with it before those packages have initialised.
//
// pluginapi.Handshake and pluginapi.ProtocolVersions are built from these
// values; use those unless initialisation order matters.
package handshake

// The go-plugin magic cookie: a plugin binary run without it in its
// environment says it is a plugin and exits. It keeps a plugin from being
// run by hand by mistake; it is not a security measure.
const (
	CookieKey   = "STEVEDORE_PLUGIN"
	CookieValue = "b1f3c6d2-stevedore-transport-7e4a9c05"
)

// ProtocolVersions lists every protocol version the host speaks, newest
// last (pluginapi.ProtocolVersions is this slice).
var ProtocolVersions = []int{1}
