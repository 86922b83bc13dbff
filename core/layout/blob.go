package layout

import (
	"bytes"
	"context"
	_ "crypto/sha256" // sha256 digests
	_ "crypto/sha512" // sha512 digests
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/atomicfile"
	"github.com/stevedore-oci/stevedore/core/content"
)

// copyChunk bounds one copy_file_range round so a cancelled ctx is noticed
// between rounds.
const copyChunk = 64 << 20

// checkDigest rejects digests that are malformed or use an algorithm this
// build cannot compute. A valid digest's encoded part is plain hex, so it is
// safe to use as a file name.
func checkDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		if errors.Is(err, digest.ErrDigestUnsupported) {
			return fmt.Errorf("digest %q: algorithm not supported: %w", d, core.ErrUnsupported)
		}
		return fmt.Errorf("digest %q: %v: %w", d, err, core.ErrInvalid)
	}
	return nil
}

// BlobPath is where the blob with digest d lives in the layout, whether or
// not it is present. It fails only for an invalid or unsupported digest.
func (s *Store) BlobPath(d digest.Digest) (string, error) {
	if err := checkDigest(d); err != nil {
		return "", fmt.Errorf("oci layout %s: %w", s.dir, err)
	}
	return filepath.Join(s.dir, ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded()), nil
}

// Stat returns the size of a present blob, or an error wrapping
// core.ErrNotFound.
func (s *Store) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	p, err := s.BlobPath(d)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		if isNotExist(err) {
			return 0, fmt.Errorf("oci layout %s: blob %s: %w", s.dir, d, core.ErrNotFound)
		}
		return 0, fmt.Errorf("oci layout %s: blob %s: %w", s.dir, d, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("oci layout %s: blob %s is not a regular file: %w", s.dir, d, core.ErrInvalid)
	}
	return fi.Size(), nil
}

// HasBlob reports whether the blob is present with the descriptor's size.
// A present file of another size counts as absent: writing the blob again
// replaces it.
func (s *Store) HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	size, err := s.Stat(ctx, desc.Digest)
	if errors.Is(err, core.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return size == desc.Size, nil
}

// Touch marks a present blob as just used (its change time, which a garbage
// collector sharing the layout spares within its grace period): a writer
// that skips a blob it found present calls it, so the blob is not swept
// before the manifest that needs it is tagged. Best effort.
func (s *Store) Touch(d digest.Digest) {
	if p, err := s.BlobPath(d); err == nil {
		now := time.Now()
		_ = os.Chtimes(p, now, now)
	}
}

// OpenBlob opens a present blob for reading; a missing blob gives an error
// wrapping core.ErrNotFound. The content is not verified.
func (s *Store) OpenBlob(ctx context.Context, d digest.Digest) (*os.File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := s.BlobPath(d)
	if err != nil {
		return nil, err
	}
	f, err := atomicfile.OpenRegular(p, os.O_RDONLY)
	if err != nil {
		if isNotExist(err) {
			return nil, fmt.Errorf("oci layout %s: blob %s: %w", s.dir, d, core.ErrNotFound)
		}
		return nil, fmt.Errorf("oci layout %s: blob %s: %w", s.dir, d, err)
	}
	return f, nil
}

// ReadBlob reads a small blob (manifest, config) whole, refusing more than
// max bytes, and verifies it against desc.
func (s *Store) ReadBlob(ctx context.Context, desc ocispec.Descriptor, max int64) ([]byte, error) {
	f, err := s.OpenBlob(ctx, desc.Digest)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := content.ReadAllVerified(atomicfile.ContextReader(ctx, f), desc, max)
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: blob %s: %w", s.dir, desc.Digest, err)
	}
	return b, nil
}

// tmpDir holds blobs being written. It is not under blobs/: tools that list
// blobs/<alg> (umoci gc) fail on names that are not digests, and a crash can
// leave a temporary file behind.
func (s *Store) tmpDir() string { return filepath.Join(s.dir, tmpDirName) }

// prepare validates desc and returns the blob's final path, whether it is
// already present, and makes sure its directory exists.
func (s *Store) prepare(ctx context.Context, desc ocispec.Descriptor) (final string, present bool, err error) {
	if err := ctx.Err(); err != nil {
		return "", false, err
	}
	if desc.Size < 0 {
		return "", false, fmt.Errorf("oci layout %s: blob %s: negative size %d: %w", s.dir, desc.Digest, desc.Size, core.ErrInvalid)
	}
	final, err = s.BlobPath(desc.Digest)
	if err != nil {
		return "", false, err
	}
	if fi, err := os.Stat(final); err == nil && fi.Mode().IsRegular() && fi.Size() == desc.Size {
		return final, true, nil
	}
	for _, d := range []string{filepath.Dir(final), s.tmpDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", false, fmt.Errorf("oci layout %s: blob %s: %w", s.dir, desc.Digest, err)
		}
	}
	s.sweepStale()
	return final, false, nil
}

// WriteBlob stores the blob read from r, which must yield exactly desc.Size
// bytes with digest desc.Digest. The content goes to a temporary file that is
// verified, fsynced and renamed into place; on any error the temporary file
// is removed and nothing becomes visible. A blob already present is not
// rewritten and r is not read. Concurrent writers of one blob are safe: each
// renames a complete, verified copy over the same name.
func (s *Store) WriteBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	return s.writeBlob(ctx, desc, r, content.NewVerifyReader)
}

// WriteBlobSized is WriteBlob for a stream whose digest the caller verifies
// as it passes and which fails before its last byte when the digest is
// wrong (the host's copy engine): only its size and clean end are checked
// here, so the content is not hashed twice.
func (s *Store) WriteBlobSized(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	return s.writeBlob(ctx, desc, r, content.NewSizeReader)
}

func (s *Store) writeBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader, check func(io.Reader, ocispec.Descriptor) *content.VerifyReader) (err error) {
	final, present, err := s.prepare(ctx, desc)
	if err != nil || present {
		return err
	}
	f, err := os.CreateTemp(s.tmpDir(), tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("oci layout %s: blob %s: %w", s.dir, desc.Digest, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			removeQuiet(tmp)
			err = fmt.Errorf("oci layout %s: blob %s: %w", s.dir, desc.Digest, err)
		}
	}()
	vr := check(atomicfile.ContextReader(ctx, r), desc)
	bufp := copyBufs.Get().(*[]byte)
	wb := atomicfile.NewWriteback(f)
	_, err = io.CopyBuffer(wb, vr, *bufp)
	copyBufs.Put(bufp)
	wb.Wait()
	if err != nil {
		return err
	}
	if !vr.Verified() {
		return fmt.Errorf("stream ended unverified: %w", core.ErrInvalid)
	}
	return commitTemp(f, tmp, final)
}

// copyBufs are 1 MiB buffers: *os.File's ReadFrom would otherwise copy a
// non-file stream 32 KiB at a time.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// WriteBlobBytes stores a blob held in memory (a manifest, a config).
func (s *Store) WriteBlobBytes(ctx context.Context, desc ocispec.Descriptor, b []byte) error {
	if err := content.VerifyBytes(b, desc); err != nil {
		return fmt.Errorf("oci layout %s: blob %s: %w", s.dir, desc.Digest, err)
	}
	// Verified above: hash once.
	return s.WriteBlobSized(ctx, desc, bytes.NewReader(b))
}

// WriteBlobFile stores the blob held in the local file src. On the same
// filesystem the file is hard-linked under a temporary name, hashed, and
// renamed into place; otherwise it is copied into a temporary file (Go uses
// copy_file_range between files, so the kernel moves the bytes), hashed,
// and renamed. Either way nothing becomes visible before it is verified.
func (s *Store) WriteBlobFile(ctx context.Context, desc ocispec.Descriptor, src string) (err error) {
	final, present, err := s.prepare(ctx, desc)
	if err != nil || present {
		return err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("oci layout %s: blob %s from %s: %w", s.dir, desc.Digest, src, err)
		}
	}()
	fi, err := os.Stat(src)
	if err != nil {
		if isNotExist(err) {
			return core.ErrNotFound
		}
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file: %w", core.ErrInvalid)
	}
	if fi.Size() != desc.Size {
		return &core.SizeMismatchError{Digest: desc.Digest, Expected: desc.Size, Actual: fi.Size()}
	}
	// Link the file itself, not a symbolic link to it (link(2) does not
	// follow one): the layout must not depend on a file outside it.
	if real, err := filepath.EvalSymlinks(src); err == nil {
		src = real
	}
	dir := filepath.Dir(final)
	tmp := randomName(s.tmpDir(), "link")
	if linkErr := os.Link(src, tmp); linkErr == nil {
		// Also removes the temporary link when rename found the final name
		// already linked to the same inode (rename then does nothing).
		defer removeQuiet(tmp)
		f, err := os.Open(tmp)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := verifyFile(ctx, f, desc); err != nil {
			return err
		}
		// The permissions are the source's and stay so: chmod would change
		// the source file too.
		if err := f.Sync(); err != nil {
			return err
		}
		if err := os.Rename(tmp, final); err != nil {
			return err
		}
		return atomicfile.SyncDir(dir)
	}
	// Not linkable (other filesystem, or not allowed): copy.
	in, err := atomicfile.OpenRegular(src, os.O_RDONLY)
	if err != nil {
		return err
	}
	defer in.Close()
	f, err := os.CreateTemp(s.tmpDir(), tmpPrefix+"*")
	if err != nil {
		return err
	}
	tmp = f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			removeQuiet(tmp)
		}
	}()
	for {
		if err = ctx.Err(); err != nil {
			return err
		}
		_, cerr := io.CopyN(f, in, copyChunk)
		if cerr == io.EOF {
			break
		}
		if cerr != nil {
			return cerr
		}
	}
	if _, err = f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err = verifyFile(ctx, f, desc); err != nil {
		return err
	}
	return commitTemp(f, tmp, final)
}

// verifyFile hashes f from its current offset to the end against desc.
func verifyFile(ctx context.Context, f *os.File, desc ocispec.Descriptor) error {
	vr := content.NewVerifyReader(atomicfile.ContextReader(ctx, f), desc)
	if _, err := io.Copy(io.Discard, vr); err != nil {
		return err
	}
	if !vr.Verified() {
		return fmt.Errorf("stream ended unverified: %w", core.ErrInvalid)
	}
	return nil
}

// commitTemp makes a written temporary file durable and visible as final.
// It closes f.
func commitTemp(f *os.File, tmp, final string) error {
	if err := f.Chmod(atomicfile.FileMode()); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(final))
}
