// Package statictree implements the static: transport: a directory tree
// that any static web server can serve as a read-only registry.
//
//	v2/NAME/manifests/TAG          manifest or index bytes
//	v2/NAME/manifests/sha256:HEX   same, by digest (every manifest)
//	v2/NAME/blobs/sha256:HEX       configs and layers
//	v2/NAME/tags/list              {"name":NAME,"tags":[...]}
//	.stevedore/manifests.json      media type, digest and size of every
//	                               manifest URL (the tree's own index)
//	.stevedore/nginx-types.map     nginx map bodies: URL -> Content-Type,
//	.stevedore/nginx-digests.map   URL -> Docker-Content-Digest
//	.stevedore/caddy.map           the same for Caddy's map directive
//
// A pull client needs each manifest's Content-Type and its
// Docker-Content-Digest; a file server cannot know them, so the generated
// server configuration (core/staticfmt.NginxConfig, CaddyConfig) includes the map files,
// which are rewritten on every Commit. Reload the server after writing.
//
// Blobs and manifests by digest are written through verified temporary
// files; tags, tags/list and the map files only at Commit, under a lock,
// so a pull never sees a tag whose content is incomplete. Close without
// Commit removes the files this session added.
package statictree
