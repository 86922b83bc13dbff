package core

import (
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// Sentinel errors. Every layer wraps these so that callers can use errors.Is
// across package and process boundaries (pluginapi maps them to gRPC codes).
var (
	ErrNotFound       = errors.New("not found")
	ErrDigestMismatch = errors.New("digest mismatch")
	ErrSizeMismatch   = errors.New("size mismatch")
	ErrUnsupported    = errors.New("unsupported")
	ErrInvalid        = errors.New("invalid")
	ErrExists         = errors.New("already exists")
	ErrUnauthorized   = errors.New("unauthorized")
	ErrDenied         = errors.New("denied")
	ErrTooLarge       = errors.New("too large")
	ErrUnavailable    = errors.New("unavailable")
	// ErrManifestRejected is a destination refusing a manifest for its
	// media type (a registry that takes only OCI, or only Docker schema 2):
	// the same image converted to the other format may be accepted.
	ErrManifestRejected = errors.New("manifest type rejected")
)

// DigestMismatchError reports content whose digest differs from the one its
// descriptor promised. errors.Is(err, ErrDigestMismatch) holds for it.
type DigestMismatchError struct {
	Expected digest.Digest
	Actual   digest.Digest
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("digest mismatch: expected %s, got %s", e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrDigestMismatch) true.
func (e *DigestMismatchError) Is(target error) bool { return target == ErrDigestMismatch }

// SizeMismatchError reports content whose length differs from its descriptor.
// errors.Is(err, ErrSizeMismatch) holds for it.
type SizeMismatchError struct {
	Digest   digest.Digest
	Expected int64
	Actual   int64
}

func (e *SizeMismatchError) Error() string {
	if e.Actual > e.Expected {
		return fmt.Sprintf("size mismatch for %s: expected %d bytes, got more", e.Digest, e.Expected)
	}
	return fmt.Sprintf("size mismatch for %s: expected %d bytes, got %d", e.Digest, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrSizeMismatch) true.
func (e *SizeMismatchError) Is(target error) bool { return target == ErrSizeMismatch }
