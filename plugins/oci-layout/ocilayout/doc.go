// Package ocilayout is the "oci" transport: OCI image layout directories
// (oci:DIR[:REF]), built on core/layout.
//
// Location is the layout directory. ModeRead opens an existing layout (a
// missing one is an error wrapping core.ErrNotFound); ModeWrite creates it
// if needed (layout.NewWriter), and Close removes a layout the endpoint
// created that still holds nothing: no index.json entry, no blob, no other
// writer (layout.Writer.Discard). A copy that fails into a new layout before
// it wrote a blob thus leaves nothing behind; blobs written are kept for the
// copy run again. No options are read.
//
// Refs: a name matched against the org.opencontainers.image.ref.name
// annotation of index.json (see layout.Store.Resolve for the other name forms
// accepted), a digest, or "" for the only image of the layout.
// PutManifest's ref "" stores the manifest by digest only, a name tags it,
// and the manifest's own digest records it as an untagged index.json entry.
// A manifest stored with ref "" that has a subject also gets an untagged
// entry, so that Referrers can find it.
//
// Endpoints opened with ModeRead implement Source, TagLister,
// RepositoryLister (the layout and the layouts in directories below it,
// layout.Find), ReferrerLister and BlobPather. An existing directory that is
// not a layout opens for reading as a tree: it lists the layouts below it,
// and its other calls fail with the "not an OCI layout" error. ModeWrite endpoints add Destination,
// Deleter, Mounter (the source location is another layout directory; the
// blob is hard-linked or copied, then verified), FilePutter and BlobStager
// (staged files live in the layout's temporary directory; Close removes the
// ones not committed). Delete removes index.json entries only; blobs stay.
//
// Referrers scans the manifests listed in index.json and reads each one:
// cost grows with the number of entries, and referrers stored only as
// blobs are not found.
//
// The package must not import host or cmd.
package ocilayout
