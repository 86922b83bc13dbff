// Package registrytest runs Debian's docker-registry (the distribution
// registry, /usr/bin/docker-registry) on 127.0.0.1 for tests, behind a
// counting and fault-injecting reverse proxy.
//
//	reg := registrytest.Start(t, registrytest.Options{TLS: true, Auth: registrytest.AuthToken})
//	ref := reg.Addr + "/team/app:v1"
//
// Each registry gets its own temporary storage and configuration (never
// /etc/docker/registry/config.yml) and is stopped by t.Cleanup. The modes are
// plain HTTP or TLS with a generated CA (CertDir holds ca.crt in the layout
// docker's certs.d and skopeo's --cert-dir read; with ClientCert the proxy
// also demands the client.cert/client.key written there), and no auth,
// htpasswd basic
// auth, or bearer tokens from an in-test issuer that signs JWTs (ES256, x5c)
// with a key the registry trusts.
//
// Clients always talk to the proxy (Addr); it forwards to the registry with
// the Host header kept, so the registry's Location headers point back at the
// proxy. The proxy records every request (Requests, Stats) and applies Faults
// (answer a status, drop the connection, cut a request or response body
// short, flip a byte, strip headers) to the requests they match.
//
// When docker-registry is not installed, Start skips the test, unless the
// environment variable CI is "true", where it fails instead. Set
// STEVEDORE_DOCKER_REGISTRY to use another binary.
//
// This package is for tests only; it must not be imported by non-test code.
package registrytest
