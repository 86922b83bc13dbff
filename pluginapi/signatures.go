package pluginapi

import (
	"fmt"

	"github.com/stevedore-oci/stevedore/core"
)

// Limits on the signatures of one manifest (SignatureLister,
// SignatureWriter). Simple-signing signatures are about a kilobyte; the caps
// keep a broken or hostile store from making the host hold much in memory.
const (
	// MaxSignatures is the most signatures one manifest may have.
	MaxSignatures = 64
	// MaxSignatureSize is the largest signature, in bytes.
	MaxSignatureSize = 4 << 20
)

// CheckSignatures checks sigs against the limits: at most MaxSignatures,
// each 1 to MaxSignatureSize bytes. Errors wrap core.ErrTooLarge (too many,
// too big) or core.ErrInvalid (empty).
func CheckSignatures(sigs [][]byte) error {
	if len(sigs) > MaxSignatures {
		return fmt.Errorf("%d signatures, over the limit of %d: %w", len(sigs), MaxSignatures, core.ErrTooLarge)
	}
	for i, s := range sigs {
		if err := checkSignature(i, s); err != nil {
			return err
		}
	}
	return nil
}

// checkSignature checks the signature at index i (0-based) alone.
func checkSignature(i int, s []byte) error {
	switch {
	case len(s) == 0:
		return fmt.Errorf("signature %d is empty: %w", i+1, core.ErrInvalid)
	case len(s) > MaxSignatureSize:
		return fmt.Errorf("signature %d is %d bytes, over the limit of %d: %w", i+1, len(s), MaxSignatureSize, core.ErrTooLarge)
	}
	return nil
}
