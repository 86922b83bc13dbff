package storage

import (
	_ "crypto/sha256" // sha256 digests
	_ "crypto/sha512" // sha512 digests
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/ref"
)

// MaxNameLength caps a repository name (clients put host + name in 255 bytes).
const MaxNameLength = 255

// reserved are path components that would collide with the files of a
// parent repository's layout (ROOT/a/blobs is a's blob directory).
var reserved = map[string]bool{"blobs": true, "index.json": true, "oci-layout": true}

// ValidateName checks a repository name against the spec's grammar and
// refuses names whose directory would collide with a layout's own files.
// A valid name has no empty, "." or ".." component, so it is safe to join
// to the root.
func ValidateName(name string) error {
	if _, ok := validNames.Load(name); ok {
		return nil
	}
	if err := validateName(name); err != nil {
		return err
	}
	if validNameCount.Add(1) < 1<<14 {
		validNames.Store(name, struct{}{})
	}
	return nil
}

// validNames remembers names that passed, so hot paths skip the regexp.
var (
	validNames     sync.Map
	validNameCount atomic.Int64
)

func validateName(name string) error {
	if len(name) == 0 || len(name) > MaxNameLength || !ref.ValidRepository(name) {
		return fmt.Errorf("repository name %q: must match [a-z0-9]+([._-][a-z0-9]+)*(/...)* and be at most %d bytes: %w", name, MaxNameLength, core.ErrInvalid)
	}
	parts := strings.Split(name, "/")
	for _, p := range parts[1:] {
		if reserved[p] {
			return fmt.Errorf("repository name %q: component %q is reserved by the OCI layout on disk: %w", name, p, core.ErrInvalid)
		}
	}
	return nil
}

// ValidateTag checks a tag against the spec's grammar.
func ValidateTag(tag string) error {
	if !ref.ValidTag(tag) {
		return fmt.Errorf("tag %q: must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}: %w", tag, core.ErrInvalid)
	}
	return nil
}

// ParseDigest parses and validates a digest of an algorithm this build can
// compute (sha256, sha512). The encoded part of a valid digest is lowercase
// hex, so it is safe as a file name.
func ParseDigest(s string) (digest.Digest, error) {
	d := digest.Digest(s)
	if err := d.Validate(); err != nil {
		if errors.Is(err, digest.ErrDigestUnsupported) {
			return "", fmt.Errorf("digest %q: algorithm not supported: %w", s, core.ErrUnsupported)
		}
		return "", fmt.Errorf("digest %q: %v: %w", s, err, core.ErrInvalid)
	}
	if !d.Algorithm().Available() {
		return "", fmt.Errorf("digest %q: algorithm not supported: %w", s, core.ErrUnsupported)
	}
	return d, nil
}
