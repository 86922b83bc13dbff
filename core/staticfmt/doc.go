// Package staticfmt describes the static: tree format shared by the static
// transport plugin and the CLI: the sidecar files a web server needs to send
// registry headers, and generators of nginx and Caddy configurations that
// serve a tree as a read-only registry. It must never import host, plugins,
// pluginapi or cmd.
package staticfmt

// Sidecar files, relative to the tree root.
const (
	MetaDir         = ".stevedore"
	NginxTypesMap   = MetaDir + "/nginx-types.map"
	NginxDigestsMap = MetaDir + "/nginx-digests.map"
	CaddyMap        = MetaDir + "/caddy.map"
)
