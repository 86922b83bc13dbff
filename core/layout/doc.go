// Package layout reads and writes OCI image layouts (image-spec
// image-layout.md): a directory holding an `oci-layout` marker, an
// `index.json` naming the top-level manifests, and content-addressed blobs
// under blobs/<algorithm>/<encoded>.
//
// A Store is opened with Open (the layout must exist) or Create (made if
// missing). Blobs are written through temporary files inside the layout that
// are verified (size and digest, sha256 or sha512), fsynced and renamed into
// place, so a blob is never visible under its digest unless it is whole and
// correct; writes are idempotent and safe when several goroutines or
// processes write the same blob. index.json is rewritten atomically
// (temp file, fsync, rename, directory fsync) under an exclusive flock on
// the file `.stevedore.lock` in the layout, so concurrent taggers in
// different processes do not lose each other's entries. Readers need no
// lock. A write that dies (crash, SIGKILL, power loss) leaves its
// temporary file behind; the first blob write of a Store removes such files
// once they have gone unchanged for an hour.
//
// Images are named by the `org.opencontainers.image.ref.name` annotation of
// index.json entries, as skopeo and umoci do. Resolve accepts a name, a
// digest, or "" for the only entry of a single-image layout; see Resolve.
// Untag and Delete remove index entries only; blobs are never deleted here
// (there is no garbage collection yet).
//
// Blobs are hard-linked by WriteBlobFile when possible: a hard-linked blob
// shares its inode with the source file, which is fine because blobs are
// never modified in place.
//
// layout is part of core: it must never import host, plugins, cmd or
// pluginapi, start a process, open a socket, or leave a goroutine running
// after a call returns.
package layout
