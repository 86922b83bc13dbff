package pluginapi

import (
	"context"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Plugin is what a transport binary hands to Serve. One plugin may serve
// several transports (the archive plugin serves docker-archive and
// oci-archive).
type Plugin interface {
	// Transports lists the transport names served, e.g. ["oci"]. Names are
	// the prefix of an endpoint before ':' (docker for docker://).
	Transports() []string
	// Open opens one endpoint. The endpoint is a location (a layout
	// directory, an archive file, a registry repository); images inside it
	// are addressed by the ref arguments of the Source and Destination
	// methods.
	Open(ctx context.Context, req OpenRequest) (Endpoint, error)
}

// Mode says how an endpoint will be used.
type Mode int

const (
	// ModeRead opens an endpoint as a source.
	ModeRead Mode = 1
	// ModeWrite opens an endpoint as a destination (reads of what it holds
	// are still allowed, e.g. HasBlob and Resolve).
	ModeWrite Mode = 2
)

func (m Mode) String() string {
	switch m {
	case ModeRead:
		return "read"
	case ModeWrite:
		return "write"
	}
	return "unknown"
}

// OpenRequest names the endpoint to open.
type OpenRequest struct {
	// Transport is one of the names from Transports().
	Transport string
	// Location is the endpoint without its transport prefix and without an
	// image reference: a path for oci:/dir:/archives, "host/repo" for
	// docker:// (already normalised).
	Location string
	Mode     Mode
	// Options carries transport-specific settings: credentials, TLS, etc.
	// Keys are documented by each transport; unknown keys must be ignored.
	Options map[string]string
}

// Endpoint is an opened location. It implements Source when opened with
// ModeRead and Destination when opened with ModeWrite, plus any of the
// optional interfaces below that the transport supports. The SDK derives the
// advertised capabilities from the interfaces the value implements, so the
// host never has to guess by trying.
type Endpoint interface {
	// Close releases the endpoint. For formats written at the end (archives)
	// Close without a prior Commit must discard everything written.
	Close(ctx context.Context) error
}

// Source reads images.
type Source interface {
	// Resolve turns a reference (tag, digest, or a transport-specific
	// selector such as "name:tag" or "@0" for docker-archive; "" for the
	// endpoint's default) into the descriptor of the top-level manifest or
	// index, with MediaType, Digest and Size set.
	Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error)
	// GetManifest returns the raw bytes of a manifest or index by
	// descriptor. Implementations need not verify; the host does.
	GetManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error)
	// GetBlob streams a blob starting at offset. The host verifies the
	// digest; implementations should not buffer the blob in memory.
	GetBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error)
}

// ManifestResolver is implemented by sources that resolve a reference and
// read its manifest in one step more cheaply than Resolve then GetManifest
// (a registry answers one GET instead of a HEAD and a GET). The host asks
// for it where it reads the manifest anyway (inspect); the SDK answers with
// Resolve and GetManifest for a source without it. raw must be the bytes
// desc describes.
type ManifestResolver interface {
	ResolveManifest(ctx context.Context, ref string) (desc ocispec.Descriptor, raw []byte, err error)
}

// Destination writes images. Nothing written may become visible under its
// digest before it is whole and verified.
type Destination interface {
	// HasBlob reports whether the destination already holds the blob.
	HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error)
	// PutBlob stores a blob from r, which yields exactly desc.Size bytes.
	// It must verify the digest before the blob becomes visible and return
	// an error wrapping core.ErrDigestMismatch otherwise; when
	// HostVerified(ctx) is true the host does that as bytes pass, and
	// checking that exactly desc.Size bytes arrived before a clean end of
	// stream is enough.
	PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error
	// PutManifest stores a manifest or index. ref is "" for a manifest stored
	// only by digest (children of an index), otherwise the tag or
	// transport-specific name to point at it. A destination that cannot take
	// the manifest's media type (but may take the image in the other format,
	// OCI or Docker schema 2) returns an error wrapping
	// core.ErrManifestRejected: the host then writes the image converted,
	// unless told to preserve digests.
	PutManifest(ctx context.Context, desc ocispec.Descriptor, raw []byte, ref string) error
}

// TagLister is implemented by sources that can list tags. A repository the
// transport does not know is an error wrapping core.ErrNotFound, not an
// empty list, so that a misspelt source is reported; the host takes it as
// no tags where it lists a destination it is about to write (which may not
// exist yet) and for the tags inspect shows next to an image it found.
type TagLister interface {
	ListTags(ctx context.Context) ([]string, error)
}

// RepositoryLister is implemented by endpoints that can list the
// repositories at or under their location (a registry's catalog): an
// endpoint opened at "registry.example/team" lists "registry.example/team"
// (when it is a repository) and "registry.example/team/app"; the docker
// transport also opens a bare registry ("registry.example:5000") for this
// alone. The locations returned are what Open takes.
type RepositoryLister interface {
	ListRepositories(ctx context.Context) ([]string, error)
}

// ReferrerLister is implemented by sources that know the referrers of a
// manifest (signatures, SBOMs).
type ReferrerLister interface {
	Referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error)
}

// Deleter is implemented by endpoints that can delete a tag or a manifest.
type Deleter interface {
	// Delete removes ref (a tag, or a digest) from the endpoint.
	Delete(ctx context.Context, ref string) error
}

// Mounter is implemented by destinations that can make a blob from another
// location of the same kind appear without moving its bytes (registry
// cross-repository mount, layout hard link). It returns false when the
// mount did not happen and the blob must be copied. The host may ask before
// it asks HasBlob: true means the blob is there afterwards, mounted or held
// already.
type Mounter interface {
	MountBlob(ctx context.Context, desc ocispec.Descriptor, fromLocation string) (bool, error)
}

// Committer is implemented by destinations written at the end (archives):
// Commit makes everything written visible at once.
type Committer interface {
	Commit(ctx context.Context) error
}

// BlobPather is implemented by sources whose blobs are plain local files. The
// host may hand the path to a FilePutter destination instead of streaming,
// or read the file itself instead of calling GetBlob (it verifies the bytes
// either way).
type BlobPather interface {
	BlobPath(ctx context.Context, desc ocispec.Descriptor) (string, error)
}

// BlobFileGetter is implemented by sources that can write a blob's bytes
// straight into a local file, so that they do not pass through the host: a
// registry downloading into a file an OCI layout destination staged.
type BlobFileGetter interface {
	// GetBlobToFile writes desc's bytes into the file at path, which exists
	// and is empty: open it for writing without creating or truncating it,
	// refuse anything but a regular file, write exactly desc.Size bytes from
	// offset 0 and stop. It need not verify the digest (the destination
	// verifies the file when it is committed) but fails on a size other than
	// desc.Size. progress, as in FileProgressPutter, gets the bytes written so
	// far. A source that cannot open path (another mount namespace) returns
	// an error wrapping core.ErrUnsupported, having written nothing.
	GetBlobToFile(ctx context.Context, desc ocispec.Descriptor, path string, progress func(written int64)) error
}

// BlobCopier is implemented by destinations that can copy a blob from
// another endpoint of the same plugin by themselves (a registry plugin
// copying between two registries: the bytes go from one to the other inside
// the plugin, not through the host). It must verify the content (or have
// the store verify it) before it becomes visible, as FilePutter does.
type BlobCopier interface {
	// CopyBlobFrom copies desc from the endpoint from, which this plugin
	// opened (the SDK hands over its own object). An endpoint it cannot copy
	// from is refused with an error wrapping core.ErrUnsupported, before
	// anything moved; the host then streams the blob. progress, as in
	// FileProgressPutter, gets the bytes moved so far.
	CopyBlobFrom(ctx context.Context, desc ocispec.Descriptor, from Endpoint, progress func(moved int64)) error
}

// FilePutter is implemented by destinations that can take a blob from a local
// file (hard link, reflink or copy_file_range). It must still verify the
// content before it becomes visible.
type FilePutter interface {
	PutBlobFile(ctx context.Context, desc ocispec.Descriptor, path string) error
}

// FileProgressPutter is a FilePutter whose transfer takes a while (an
// upload) and reports how far it got: the host shows the bytes moving and
// gives up on a transfer that stops moving (the inactivity timeout) instead
// of waiting on it without bound.
type FileProgressPutter interface {
	FilePutter
	// PutBlobFileProgress is PutBlobFile calling progress with the bytes of
	// the file sent so far, as they go (it may be called from any goroutine,
	// often; the SDK forwards the latest value a few times a second). The
	// count may go back when the upload restarts.
	PutBlobFileProgress(ctx context.Context, desc ocispec.Descriptor, path string, progress func(sent int64)) error
}

// BlobStager is implemented by destinations that keep blobs as local files
// and let the host write a blob's bytes straight into their store, so the
// bytes do not pass through the plugin process. The host stages a file,
// writes and fsyncs it, then commits or aborts it; nothing staged is visible
// under any digest before CommitStagedBlob succeeds.
type BlobStager interface {
	// StageBlob creates a fresh, empty file (mode 0600) inside the store for
	// desc's bytes and returns its absolute path.
	StageBlob(ctx context.Context, desc ocispec.Descriptor) (path string, err error)
	// CommitStagedBlob makes the file at path visible as desc. It refuses a
	// path that this endpoint did not stage for desc, or that is already
	// committed or aborted, with an error wrapping core.ErrInvalid. The file
	// must hold exactly desc.Size bytes (else an error wrapping
	// core.ErrSizeMismatch) with digest desc.Digest (else core.ErrDigestMismatch);
	// when HostVerified(ctx) is true the host hashed the bytes as it wrote
	// them, and checking the size is enough. The file is fsynced and renamed
	// into place. On any failure with a staged path, the staged file is
	// removed and nothing becomes visible.
	CommitStagedBlob(ctx context.Context, desc ocispec.Descriptor, path string) error
	// AbortStagedBlob removes a staged file that will not be committed. A
	// path this endpoint did not stage is refused (core.ErrInvalid) and left
	// alone.
	AbortStagedBlob(ctx context.Context, path string) error
}

// SignatureLister is implemented by sources that keep simple-signing
// signatures (skopeo's signature-N files) beside their images. A signature
// is an opaque blob; see MaxSignatures and MaxSignatureSize.
type SignatureLister interface {
	// Signatures returns the signatures of the manifest with digest
	// manifest, in their stored order. A manifest without signatures, or
	// one the source does not hold, has none: an empty list, not an error.
	Signatures(ctx context.Context, manifest digest.Digest) ([][]byte, error)
}

// SignatureWriter is implemented by destinations that can store signatures.
type SignatureWriter interface {
	// PutSignatures stores sigs, in order, as the signatures of the manifest
	// with digest manifest, replacing any it had. The host calls it once the
	// manifest is written (by digest) and before a tag points at it, so a
	// tagged image is complete. More than MaxSignatures signatures, or one
	// over MaxSignatureSize bytes, is refused with an error wrapping
	// core.ErrTooLarge, an empty signature with core.ErrInvalid (see
	// CheckSignatures).
	PutSignatures(ctx context.Context, manifest digest.Digest, sigs [][]byte) error
}

// Capability names, as advertised to the host.
const (
	CapSource      = "source"
	CapDest        = "destination"
	CapListTags    = "list-tags"
	CapReferrers   = "referrers"
	CapDelete      = "delete"
	CapMount       = "mount"
	CapCommit      = "commit"
	CapBlobPath    = "blob-path"
	CapPutBlobFile = "put-blob-file"
	// CapPutBlobFileProgress: FileProgressPutter.
	CapPutBlobFileProgress = "put-blob-file-progress"
	// CapGetBlobFile: BlobFileGetter.
	CapGetBlobFile = "get-blob-file"
	// CapCopyBlob: BlobCopier.
	CapCopyBlob  = "copy-blob"
	CapStageBlob = "stage-blob"
	// CapSignatures and CapPutSignatures: SignatureLister, SignatureWriter.
	CapSignatures    = "signatures"
	CapPutSignatures = "put-signatures"
	// CapListRepositories: RepositoryLister.
	CapListRepositories = "list-repositories"
)

// Capabilities derives the capability list of an endpoint from the optional
// interfaces it implements.
func Capabilities(e Endpoint) []string {
	var caps []string
	add := func(ok bool, c string) {
		if ok {
			caps = append(caps, c)
		}
	}
	_, ok := e.(Source)
	add(ok, CapSource)
	_, ok = e.(Destination)
	add(ok, CapDest)
	_, ok = e.(TagLister)
	add(ok, CapListTags)
	_, ok = e.(RepositoryLister)
	add(ok, CapListRepositories)
	_, ok = e.(ReferrerLister)
	add(ok, CapReferrers)
	_, ok = e.(Deleter)
	add(ok, CapDelete)
	_, ok = e.(Mounter)
	add(ok, CapMount)
	_, ok = e.(Committer)
	add(ok, CapCommit)
	_, ok = e.(BlobPather)
	add(ok, CapBlobPath)
	_, ok = e.(FilePutter)
	add(ok, CapPutBlobFile)
	_, ok = e.(FileProgressPutter)
	add(ok, CapPutBlobFileProgress)
	_, ok = e.(BlobFileGetter)
	add(ok, CapGetBlobFile)
	_, ok = e.(BlobCopier)
	add(ok, CapCopyBlob)
	_, ok = e.(BlobStager)
	add(ok, CapStageBlob)
	_, ok = e.(SignatureLister)
	add(ok, CapSignatures)
	_, ok = e.(SignatureWriter)
	add(ok, CapPutSignatures)
	return caps
}
