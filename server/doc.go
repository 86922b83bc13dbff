// Package server is Stevedore's OCI distribution registry (distribution-spec
// v1.1): an http.Handler serving /v2/ from a storage.Store (one OCI image
// layout per repository under a root directory), with authentication
// (htpasswd basic auth, a built-in bearer token endpoint, an access policy
// and an Authorize hook), an access log, /healthz and /metrics.
//
// New builds the handler for embedding; Run serves it on an address with
// graceful shutdown. server imports only core packages and its own
// sub-packages; it must never import host, pluginapi, plugins or cmd.
package server
