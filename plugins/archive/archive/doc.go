// Package archive implements the oci-archive: and docker-archive:
// transports: single tar files holding one or more images.
//
// Reading never unpacks an uncompressed archive: its entries are indexed
// once (core/layer.IndexTar) and blobs are read in place. A compressed
// archive is first decompressed into a temporary file that Close removes,
// and so is one holding sparse files (GNU tar --sparse), whose content is
// not stored in one piece: its copy has them written out whole.
//
// Writing streams blobs straight into a temporary tar beside the final file
// (blob sizes are known from their descriptors), verifying each as it goes;
// a blob that fails verification is cut off again, and Commit renames the
// finished tar into place. Close without Commit removes everything.
// Writing to an existing archive adds to it: its images are carried into
// the new tar (a name written again moves to the new image), which is
// compressed as the existing one was (gzip or zstd; a bzip2 one is read but
// refused as a destination), and a file that is not an archive of that kind
// is refused, not overwritten.
//
// oci-archive: is a tar of an OCI image layout. docker-archive: is what
// `docker save` writes and `docker load` reads: manifest.json listing each
// image's config, RepoTags and uncompressed layer tars, plus the legacy
// `repositories` file; Docker 25+ archives also carry an OCI layout, which
// is used when present to keep the original manifests.
package archive
