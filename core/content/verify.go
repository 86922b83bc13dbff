package content

import (
	_ "crypto/sha256" // registers sha256 for go-digest
	_ "crypto/sha512" // registers sha512 for go-digest
	"fmt"
	"hash"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
)

// Caps on content that is held in memory.
const (
	MaxManifestSize = 4 << 20
	MaxConfigSize   = 64 << 20
)

// VerifyReader passes bytes through while hashing them. It returns an error
// instead of io.EOF when the stream ends at the wrong size or digest, and an
// error as soon as the stream runs past the expected size, so a consumer that
// reads until EOF never accepts wrong content.
type VerifyReader struct {
	r        io.Reader
	h        hash.Hash
	expected ocispec.Descriptor
	n        int64
	checked  bool
	err      error
}

// NewVerifyReader verifies r against desc.Digest and desc.Size. The digest
// algorithm must be available (sha256, sha512); otherwise the first Read fails.
// If the stream is resumed at offset > 0, use NewVerifyReaderFrom.
func NewVerifyReader(r io.Reader, desc ocispec.Descriptor) *VerifyReader {
	v := NewSizeReader(r, desc)
	if v.err != nil {
		return v
	}
	if err := desc.Digest.Validate(); err != nil {
		v.err = fmt.Errorf("descriptor digest %q: %w", desc.Digest, core.ErrInvalid)
		return v
	}
	v.h = desc.Digest.Algorithm().Hash()
	return v
}

// NewSizeReader checks only that r yields exactly desc.Size bytes and then
// ends. It is for streams whose digest the caller already verifies as they
// pass (the host's copy engine), so the content is not hashed twice.
func NewSizeReader(r io.Reader, desc ocispec.Descriptor) *VerifyReader {
	v := &VerifyReader{r: r, expected: desc}
	if desc.Size < 0 {
		v.err = fmt.Errorf("descriptor %s has negative size %d: %w", desc.Digest, desc.Size, core.ErrInvalid)
	}
	return v
}

// Read implements io.Reader. The digest is checked on the read that
// completes desc.Size bytes; on a mismatch the last byte is withheld and the
// error returned with the rest, so a consumer that stops after exactly Size
// bytes (io.ReadFull, a LimitReader) still never holds the whole of wrong
// content.
func (v *VerifyReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.n == v.expected.Size && v.checked {
		// Everything expected has passed and matched: anything more is an
		// over-long stream.
		var one [1]byte
		n, err := v.r.Read(one[:])
		if n > 0 {
			v.err = &core.SizeMismatchError{Digest: v.expected.Digest, Expected: v.expected.Size, Actual: v.n + int64(n)}
			return 0, v.err
		}
		if err == io.EOF || err == nil {
			v.err = io.EOF
			return 0, io.EOF
		}
		v.err = err
		return 0, err
	}
	if rem := v.expected.Size - v.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := v.r.Read(p)
	if n > 0 {
		if v.h != nil {
			v.h.Write(p[:n])
		}
		v.n += int64(n)
	}
	if v.n == v.expected.Size && !v.checked {
		v.checked = true
		if actual := v.digest(); actual != v.expected.Digest {
			v.err = &core.DigestMismatchError{Expected: v.expected.Digest, Actual: actual}
			if n > 0 {
				n--
			}
			return n, v.err
		}
		if err == io.EOF {
			v.err = io.EOF
		}
		if n == 0 && err == nil {
			// Zero-length blob: report its end now.
			return v.Read(p)
		}
		return n, err
	}
	if err == io.EOF {
		v.err = &core.SizeMismatchError{Digest: v.expected.Digest, Expected: v.expected.Size, Actual: v.n}
		return n, v.err
	}
	if err != nil {
		v.err = err
	}
	return n, err
}

// digest is the digest of what passed, or the expected one when only the
// size is checked.
func (v *VerifyReader) digest() digest.Digest {
	if v.h == nil {
		return v.expected.Digest
	}
	return digest.NewDigest(v.expected.Digest.Algorithm(), v.h)
}

// Verified reports whether the whole stream was read and matched.
func (v *VerifyReader) Verified() bool { return v.checked && v.err == io.EOF }

// Err returns the error that ended the stream, or nil while it is going
// and after it ended cleanly.
func (v *VerifyReader) Err() error {
	if v.err == io.EOF {
		return nil
	}
	return v.err
}

// BytesRead is the number of bytes passed through so far.
func (v *VerifyReader) BytesRead() int64 { return v.n }

// ReadAllVerified reads a small blob (manifest, config) fully, refusing more
// than max bytes, and verifies it against desc.
func ReadAllVerified(r io.Reader, desc ocispec.Descriptor, max int64) ([]byte, error) {
	if desc.Size > max {
		return nil, fmt.Errorf("%s is %d bytes, over the %d byte limit: %w", desc.Digest, desc.Size, max, core.ErrTooLarge)
	}
	b, err := io.ReadAll(NewVerifyReader(r, desc))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// VerifyBytes checks b against desc.
func VerifyBytes(b []byte, desc ocispec.Descriptor) error {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("descriptor digest %q: %w", desc.Digest, core.ErrInvalid)
	}
	if int64(len(b)) != desc.Size {
		return &core.SizeMismatchError{Digest: desc.Digest, Expected: desc.Size, Actual: int64(len(b))}
	}
	if actual := desc.Digest.Algorithm().FromBytes(b); actual != desc.Digest {
		return &core.DigestMismatchError{Expected: desc.Digest, Actual: actual}
	}
	return nil
}
