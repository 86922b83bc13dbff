// Package syncspec reads sync files into host.SyncJob lists: stevedore's
// own YAML format (documented in docs/sync.md, schema in
// docs/sync.schema.json) and skopeo's sync YAML (`skopeo sync --src yaml`),
// so that skopeo users can switch without rewriting their files.
//
// It also holds the tag filters (allow/deny regexes, anchored; semver
// constraints; newest N) and the immutable-tag rules.
//
// It may import host, core and pluginapi; host must never import it.
package syncspec
