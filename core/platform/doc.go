// Package platform parses, normalises and matches OCI platforms
// ("os/arch[/variant]") so that "aarch64", "arm64" and "arm64/v8" all select
// the same index entry. It must never import host, plugins, pluginapi or cmd.
package platform
