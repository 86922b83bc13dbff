// Package dirtransport implements the dir: transport: skopeo's directory
// format, one image per directory.
//
// A directory holds a `version` file ("Directory Transport Version: 1.1"),
// the top-level manifest or index as `manifest.json`, each blob (config,
// layer) under its hex digest, and, for a multi-platform copy, every child
// manifest as `<hex>.manifest.json`, exactly as skopeo 1.9 writes with
// --all. Simple-signing signatures are files numbered from 1, as skopeo
// keeps them: `signature-1`, `signature-2`, ... for the directory's image
// and `<hex>.signature-N` for each child manifest of its index. Sources list
// them (SignatureLister, up to the first number missing) and destinations
// write them (SignatureWriter), byte for byte; an image copied without
// --all from an index gets its child's signatures as `signature-N`.
//
// A destination is built in a hidden sibling directory and moved under its
// final name only by Commit, so a failed or cancelled copy leaves the
// destination as it was. Destinations implement BlobStager: the host writes
// a blob into a file staged in that directory; staged files not committed
// are removed by Commit and Close.
package dirtransport
