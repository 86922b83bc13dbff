// Package manifest parses and validates OCI image manifests and indexes and
// Docker v2 schema 2 manifests and manifest lists, and walks their children.
// It keeps the raw bytes: digests are always computed from them and nothing
// is re-encoded. It must never import host, plugins, pluginapi or cmd.
package manifest
