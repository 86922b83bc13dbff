package pluginapi

import "context"

type hostVerifiedKey struct{}

// WithHostVerified marks ctx for a Destination.PutBlob call whose reader is
// verified by the caller as bytes pass: it yields the blob's bytes only if
// they match the descriptor's digest, and fails before the last byte
// otherwise. On BlobStager.CommitStagedBlob it says that the caller hashed
// the bytes as it wrote the staged file, and commits only a file whose
// digest matched. The host's copy engine does both; the mark travels to
// plugin processes with the call.
func WithHostVerified(ctx context.Context) context.Context {
	return context.WithValue(ctx, hostVerifiedKey{}, true)
}

// HostVerified reports whether the reader of this PutBlob call (or the
// staged file of this CommitStagedBlob call) is verified by the host. A
// destination may then check only that it received exactly desc.Size bytes
// (followed by a clean end of stream), instead of hashing the content a
// second time. Ignoring it (always hashing) is always correct.
func HostVerified(ctx context.Context) bool {
	v, _ := ctx.Value(hostVerifiedKey{}).(bool)
	return v
}
