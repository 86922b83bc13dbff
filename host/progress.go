package host

import (
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// EventKind says what happened to a blob or manifest during a copy.
type EventKind string

// Event kinds, in the order a blob sees them.
const (
	BlobStart    EventKind = "blob-start"    // bytes start moving
	BlobProgress EventKind = "blob-progress" // Bytes so far
	BlobDone     EventKind = "blob-done"     // copied and verified
	BlobSkipped  EventKind = "blob-skipped"  // the destination had it
	BlobMounted  EventKind = "blob-mounted"  // mounted from the source location, no bytes moved
	BlobLinked   EventKind = "blob-linked"   // taken by the destination from a local file (link, copy_file_range, upload)
	ManifestDone EventKind = "manifest-done" // a manifest or index written
)

// Event reports copy progress. Callbacks run on the copying goroutines and
// must be quick and safe for concurrent use.
type Event struct {
	Kind  EventKind          `json:"kind"`
	Desc  ocispec.Descriptor `json:"descriptor"`
	Bytes int64              `json:"bytes,omitempty"`
	// Ref is the destination reference, set on the top-level ManifestDone.
	Ref string `json:"ref,omitempty"`
}
