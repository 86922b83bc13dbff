// Package auth keeps registry credentials in the files docker, podman and
// skopeo read: containers' auth.json (default
// ${XDG_RUNTIME_DIR}/containers/auth.json, or $REGISTRY_AUTH_FILE) and
// docker's config.json, including their credsStore and credHelpers
// (docker-credential-NAME helpers on PATH). It backs `stevedore login` and
// `stevedore logout`: Login checks the credentials against the registry
// before saving them, as docker login does.
//
// The docker transport plugin reads the same files on its own (plugins may
// not import host); both sides use the same format and keys: "docker.io"
// for Docker Hub (the legacy "https://index.docker.io/v1/" is read and
// removed too), "host[:port]" for other registries.
//
// This package must never import cmd or plugins.
package auth
