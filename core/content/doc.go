// Package content verifies and bounds content as it streams: a reader that
// checks size and digest as bytes pass, and the size caps the project applies
// to manifests and configs. It must never import host, plugins or cmd.
package content
