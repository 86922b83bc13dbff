// Package storage is the registry server's content store: a root directory
// holding one OCI image layout per repository (ROOT/NAME/, readable with
// `oci:ROOT/NAME:TAG` by skopeo and by Stevedore's oci transport) whose blobs
// are hard links to one shared, content-addressed directory
// (ROOT/.blobs/<alg>/<hex>), so a blob pushed to many repositories is stored
// once and a cross-repository mount is a link, not a copy.
//
// Every write is verified before it becomes visible: uploads are received
// into ROOT/.uploads/<id>/ while being hashed, and only a blob whose digest
// matches is renamed into .blobs and linked into the repository. index.json
// is replaced atomically (temp file, fsync, rename) under an exclusive flock
// on the layout's .stevedore.lock, the same lock core/layout takes, so
// `stevedore gc` and other tools in other processes can work beside a
// running server. Tags are index.json entries annotated with
// org.opencontainers.image.ref.name; manifests pushed by digest are entries
// without that annotation.
//
// The store keeps a parsed copy of each repository's index.json in memory
// and revalidates it with one stat per request, so manifest and blob lookups
// do not re-read files.
//
// storage imports only core packages; names and digests are validated here
// too, before any path is built from them.
package storage
