// Package pluginapi is the contract between the Stevedore host and its
// transport plugins, and nothing else:
//
//   - the Go interfaces a transport implements (transport.go);
//   - the wire protocol (proto/v1) and the gRPC adapters that carry those
//     interfaces across a go-plugin process boundary: the plugin side wraps a
//     Plugin (grpc_server.go, blob_server.go), the host side is a
//     *RemotePlugin whose endpoints are *RemoteEndpoint (grpc_client.go,
//     blob_client.go);
//   - core errors carried as gRPC status codes, both ways (errors.go);
//   - the blob data plane: blob bytes go over a unix socket the host listens
//     on, admitted by one-time tokens, while gRPC carries control
//     (dataplane.go); gRPC streams are the fallback, and carry blobs of
//     up to SmallBlob bytes (a config), which the data plane would cost
//     more to set up for;
//   - the go-plugin handshake, protocol-version negotiation, plugin map and
//     launch helpers (handshake.go), and Serve, which a plugin's main calls
//     (serve.go).
//
// The conformance kit that every transport should pass is in
// pluginapi/transporttest. docs/plugin-guide.md walks through writing,
// testing, installing and debugging a transport; examples/custom-transport
// is a complete one in a module of its own.
//
// # Writing a transport
//
// A plugin's main is one line:
//
//	func main() { pluginapi.Serve(mytransport.New()) }
//
// and the binary is named stevedore-transport-NAME. The value handed to
// Serve is a Plugin: Transports lists the transport names it serves (the
// prefix before ':' in "NAME:LOCATION[:REF]") and Open opens one endpoint
// (a location: a directory, an archive, a registry repository) in ModeRead
// or ModeWrite. Images inside an endpoint are addressed by the ref
// arguments: a tag, a digest, a transport-specific selector, or "" for the
// endpoint's default.
//
// Required: an endpoint opened with ModeRead implements Source (Resolve,
// GetManifest, GetBlob); one opened with ModeWrite implements Destination
// (HasBlob, PutBlob, PutManifest). Every endpoint has Close.
//
// Optional capabilities are the other interfaces, advertised by simply
// implementing them (Capabilities derives the list; the host asks, never
// guesses): TagLister, ReferrerLister, Deleter, Mounter (server-side blob
// mounts), Committer (formats written at the end: nothing is visible before
// Commit, and Close without Commit discards), BlobPather and FilePutter
// (local files the host can hand from one plugin to another without
// streaming, or read itself), and BlobStager (a destination whose store is
// local files lets the host write a blob into a staged file and commit it,
// so the bytes skip the plugin process).
//
// Errors: wrap the core sentinels (core.ErrNotFound, ErrDigestMismatch,
// ErrSizeMismatch, ErrUnsupported, ErrInvalid, ErrExists, ErrUnauthorized,
// ErrDenied, ErrTooLarge, ErrUnavailable) with a one-line message naming the
// input. Each sentinel travels as a gRPC status code plus an ErrorInfo
// reason, so errors.Is works on the host side; the message arrives
// unchanged. An error that wraps no sentinel arrives as codes.Unknown.
//
// Streams, not buffers: GetBlob returns a reader from an offset and PutBlob
// receives one that yields exactly desc.Size bytes; never hold a blob in
// memory. A Destination must verify size and digest before a blob becomes
// visible (core/content.NewVerifyReader does both while streaming) and
// return an error wrapping core.ErrDigestMismatch otherwise. PutBlob of a
// blob already held may return at once without reading. Manifests are small
// and travel as bytes (capped at core/content.MaxManifestSize).
//
// Contexts: every call's context ends when the host gives up (Ctrl-C, a
// failed sibling transfer, the host's per-call deadline or blob inactivity
// timeout); return promptly when it does.
//
// # Logging and stdout
//
// Log with Logger() (hclog, JSON on stderr): the host re-logs the lines
// under the plugin's name. STEVEDORE_PLUGIN_LOG_LEVEL sets the level
// (default warn). Never write to stdout: go-plugin's handshake is the
// plugin's first stdout line, and the host refuses a plugin that prints
// anything before it.
//
// # Protocol versions
//
// ProtocolVersions lists the wire-protocol versions this package speaks.
// The host offers all of its versions and Serve picks the newest one both
// sides speak. With none in common, Serve prints a line naming its versions
// instead of the handshake and exits; Dispense returns a *ProtocolError
// naming both lists, which the host reports with the plugin's name and path.
//
// # Debugging
//
// Run a plugin binary by hand (or under a debugger) with
// STEVEDORE_PLUGIN_DEBUG=1: Serve prints a STEVEDORE_PLUGIN_REATTACH=...
// setting; with it exported, the host uses that process instead of starting
// the binary (it must still be on the plugin search path) and leaves it
// running when it exits. STEVEDORE_DATAPLANE=grpc moves blob bytes over gRPC
// streams instead of the unix-socket data plane.
//
// # Host side
//
// A host launches a plugin with plugin.NewClient(pluginapi.ClientConfig(cmd,
// logger)) and gets a Plugin from Dispense. A *RemoteEndpoint has every
// method of every optional interface, so type assertions on the host side
// always succeed; use RemoteEndpoint.Has(CapX) instead. Methods whose
// capability the plugin did not advertise fail with an error wrapping
// core.ErrUnsupported.
//
// pluginapi imports core and third-party libraries only. It must never
// import host, cmd, plugins or server: third-party plugins build against it.
package pluginapi
