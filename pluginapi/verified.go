package pluginapi

import "context"

type hostVerifiedKey struct{}

// WithHostVerified marks ctx for a Destination.PutBlob call whose reader is
// verified by the caller as bytes pass: it yields the blob's bytes only if
// they match the descriptor's digest, and fails before the last byte
// otherwise. The host's copy engine passes such readers; the mark travels to
// plugin processes with the call.
func WithHostVerified(ctx context.Context) context.Context {
	return context.WithValue(ctx, hostVerifiedKey{}, true)
}

// HostVerified reports whether the reader of this PutBlob call is verified
// by the host. A destination may then check only that it received exactly
// desc.Size bytes followed by a clean end of stream, instead of hashing the
// content a second time. Ignoring it (always hashing) is always correct.
func HostVerified(ctx context.Context) bool {
	v, _ := ctx.Value(hostVerifiedKey{}).(bool)
	return v
}
