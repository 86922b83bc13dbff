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
//     (dataplane.go); gRPC streams are the fallback;
//   - the go-plugin handshake, plugin map and launch helpers (handshake.go),
//     and Serve, which a plugin's main calls (serve.go).
//
// A plugin's main is one line: pluginapi.Serve(myPlugin). A host launches a
// plugin with plugin.NewClient(pluginapi.ClientConfig(cmd, logger)) and gets a
// Plugin from pluginapi.Dispense.
//
// Capabilities: a *RemoteEndpoint has every method of every optional
// interface, so type assertions on the host side always succeed; use
// RemoteEndpoint.Has(CapX) instead. Methods whose capability the plugin did
// not advertise fail with an error wrapping core.ErrUnsupported.
//
// pluginapi imports core and third-party libraries only. It must never
// import host, cmd, plugins or server: third-party plugins build against it.
package pluginapi
