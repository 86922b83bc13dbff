package layout

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
)

// stagePrefix starts the name of a staged file: a temporary file that a
// caller fills itself and then commits (see StageBlob).
const stagePrefix = tmpPrefix + "stage-"

// StageBlob creates a fresh, empty file (mode 0600) in the layout's
// temporary directory, for a caller that writes desc's bytes into it itself
// and then calls CommitStaged or AbortStaged. It returns the file's absolute
// path. The file is never visible as a blob before CommitStaged; a crash
// leaves it in the temporary directory, like any unfinished write.
func (s *Store) StageBlob(ctx context.Context, desc ocispec.Descriptor) (string, error) {
	if _, _, err := s.prepare(ctx, desc); err != nil {
		return "", err
	}
	if err := os.MkdirAll(s.tmpDir(), 0o755); err != nil {
		return "", fmt.Errorf("oci layout %s: blob %s: %w", s.dir, desc.Digest, err)
	}
	f, err := os.CreateTemp(s.tmpDir(), stagePrefix+"*")
	if err != nil {
		return "", fmt.Errorf("oci layout %s: blob %s: %w", s.dir, desc.Digest, err)
	}
	p := f.Name()
	if err := f.Close(); err != nil {
		removeQuiet(p)
		return "", fmt.Errorf("oci layout %s: blob %s: %w", s.dir, desc.Digest, err)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		removeQuiet(p)
		return "", fmt.Errorf("oci layout %s: blob %s: %w", s.dir, desc.Digest, err)
	}
	return abs, nil
}

// checkStaged refuses a path that is not a staged file of this layout. It
// does not know which caller staged it; that is the caller's to track.
func (s *Store) checkStaged(path string) error {
	tmp, err := filepath.Abs(s.tmpDir())
	if err != nil {
		return fmt.Errorf("oci layout %s: %w", s.dir, err)
	}
	if !filepath.IsAbs(path) || filepath.Dir(path) != tmp || !strings.HasPrefix(filepath.Base(path), stagePrefix) {
		return fmt.Errorf("oci layout %s: %q is not a staged blob file of this layout: %w", s.dir, path, core.ErrInvalid)
	}
	return nil
}

// CommitStaged makes the staged file at path (from StageBlob) visible as
// desc. The file must hold exactly desc.Size bytes and, unless verified says
// the writer hashed them as it wrote, match desc.Digest; it is then fsynced
// and renamed into place. A blob already present is kept and the staged file
// dropped. On any error after path is known to be a staged file, the file
// is removed and nothing becomes visible.
func (s *Store) CommitStaged(ctx context.Context, desc ocispec.Descriptor, path string, verified bool) (err error) {
	if err := s.checkStaged(path); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			removeQuiet(path)
			err = fmt.Errorf("oci layout %s: staged blob %s: %w", s.dir, desc.Digest, err)
		}
	}()
	final, present, err := s.prepare(ctx, desc)
	if err != nil {
		return err
	}
	if present {
		removeQuiet(path)
		return nil
	}
	// Lstat: a staged name must be the regular file StageBlob made, not a
	// link to something else that would be renamed into the layout.
	fi, err := os.Lstat(path)
	if err != nil {
		if isNotExist(err) {
			return fmt.Errorf("staged file is gone: %w", core.ErrInvalid)
		}
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("staged file is not a regular file: %w", core.ErrInvalid)
	}
	if fi.Size() != desc.Size {
		return &core.SizeMismatchError{Digest: desc.Digest, Expected: desc.Size, Actual: fi.Size()}
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if !verified {
		if err := verifyFile(ctx, f, desc); err != nil {
			_ = f.Close()
			return err
		}
	}
	if err := commitTemp(f, path, final); err != nil {
		_ = f.Close()
		return err
	}
	return nil
}

// AbortStaged removes a staged file. A file already gone is not an error.
func (s *Store) AbortStaged(path string) error {
	if err := s.checkStaged(path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !isNotExist(err) {
		return fmt.Errorf("oci layout %s: %w", s.dir, err)
	}
	return nil
}
