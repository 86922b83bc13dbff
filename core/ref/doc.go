// Package ref parses transport-prefixed endpoints in skopeo's syntax
// (docker://NAME[:TAG|@DIGEST], oci:PATH[:REF], dir:PATH, ...) into a
// transport name, an opaque location that the transport's plugin opens, and
// a reference to one image inside it. It must never import host, plugins,
// pluginapi or cmd.
package ref
