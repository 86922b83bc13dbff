package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/atomicfile"
)

// StatBlob returns the size of blob d in repository name, or an error
// wrapping core.ErrNotFound. name and d must be valid.
func (s *Store) StatBlob(name string, d digest.Digest) (int64, error) {
	fi, err := os.Stat(s.repoBlobPath(name, d))
	if err != nil {
		if isNotExist(err) {
			return 0, fmt.Errorf("repository %s: blob %s: %w", name, d, core.ErrNotFound)
		}
		return 0, fmt.Errorf("repository %s: blob %s: %w", name, d, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("repository %s: blob %s: %w", name, d, core.ErrNotFound)
	}
	return fi.Size(), nil
}

// TouchBlob marks blob d of repository name as just used: its change time,
// which gc spares within its grace period. A client that found the blob
// with HEAD will not upload it and may push the manifest needing it much
// later; gc used to sweep an old orphaned blob in between, failing the push
// with MANIFEST_BLOB_UNKNOWN. Best effort.
func (s *Store) TouchBlob(name string, d digest.Digest) {
	now := time.Now()
	_ = os.Chtimes(s.repoBlobPath(name, d), now, now)
}

// OpenBlob opens blob d of repository name for reading.
func (s *Store) OpenBlob(name string, d digest.Digest) (*os.File, error) {
	f, err := os.Open(s.repoBlobPath(name, d))
	if err != nil {
		if isNotExist(err) {
			return nil, fmt.Errorf("repository %s: blob %s: %w", name, d, core.ErrNotFound)
		}
		return nil, fmt.Errorf("repository %s: blob %s: %w", name, d, err)
	}
	return f, nil
}

// DeleteBlob removes blob d from repository name. The shared copy stays
// until gc finds no repository linking it.
func (s *Store) DeleteBlob(name string, d digest.Digest) error {
	p := s.repoBlobPath(name, d)
	if err := os.Remove(p); err != nil {
		if isNotExist(err) {
			return fmt.Errorf("repository %s: blob %s: %w", name, d, core.ErrNotFound)
		}
		return fmt.Errorf("repository %s: delete blob %s: %w", name, d, err)
	}
	_ = atomicfile.SyncDir(filepath.Dir(p))
	return nil
}

// Mount makes blob d of repository from available in repository name
// without copying bytes (a hard link to the shared copy). It returns the
// blob's size, or an error wrapping core.ErrNotFound when from lacks it.
func (s *Store) Mount(ctx context.Context, name, from string, d digest.Digest) (int64, error) {
	src := s.repoBlobPath(from, d)
	fi, err := os.Stat(src)
	if err != nil || !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("repository %s: blob %s: %w", from, d, core.ErrNotFound)
	}
	shared := s.sharedBlobPath(d)
	if err := os.MkdirAll(filepath.Dir(shared), 0o755); err != nil {
		return 0, err
	}
	// Prefer the shared name so all repositories share one inode; a layout
	// written by another tool may hold a blob that is not shared yet.
	if err := os.Link(src, shared); err != nil && !errors.Is(err, os.ErrExist) {
		return 0, fmt.Errorf("repository %s: mount blob %s: %w", name, d, err)
	}
	if err := s.linkIntoRepo(ctx, name, d, src); err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// linkIntoRepo links the shared blob d into repository name's layout,
// creating the layout if needed. fallback is another file holding the same
// verified content, used if the shared name vanished (gc) meanwhile.
func (s *Store) linkIntoRepo(ctx context.Context, name string, d digest.Digest, fallback string) error {
	r := s.repo(name)
	r.mu.Lock()
	err := s.ensureLayout(r)
	r.mu.Unlock()
	if err != nil {
		return err
	}
	return s.linkBlob(ctx, name, d, fallback)
}

// linkBlob is linkIntoRepo for a repository whose layout exists.
func (s *Store) linkBlob(ctx context.Context, name string, d digest.Digest, fallback string) error {
	dst := s.repoBlobPath(name, d)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("repository %s: blob %s: %w", name, d, err)
	}
	shared := s.sharedBlobPath(d)
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := os.Link(shared, dst)
		if err == nil {
			break
		}
		if errors.Is(err, os.ErrExist) {
			// Uploaded or mounted again by a push in progress: a use, which
			// gc's grace period must see as recent as a new link.
			s.TouchBlob(name, d)
			break
		}
		if !isNotExist(err) || fallback == "" || attempt >= 3 {
			return fmt.Errorf("repository %s: link blob %s: %w", name, d, err)
		}
		// gc removed the shared name between our checks: put it back.
		if err := os.Link(fallback, shared); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("repository %s: link blob %s: %w", name, d, err)
		}
	}
	return atomicfile.SyncDir(filepath.Dir(dst))
}

// storeVerified makes the verified file src (inside the root, on the same
// filesystem) the shared copy of d if there is none yet and links it into
// repository name. src is removed afterwards.
func (s *Store) storeVerified(ctx context.Context, name string, d digest.Digest, src string, layoutReady bool) error {
	defer os.Remove(src)
	shared := s.sharedBlobPath(d)
	if err := os.MkdirAll(filepath.Dir(shared), 0o755); err != nil {
		return err
	}
	if err := os.Link(src, shared); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("store blob %s: %w", d, err)
	} else if err == nil {
		if err := atomicfile.SyncDir(filepath.Dir(shared)); err != nil {
			return err
		}
	}
	if layoutReady {
		return s.linkBlob(ctx, name, d, src)
	}
	return s.linkIntoRepo(ctx, name, d, src)
}

// putBlobBytes stores a small verified blob (a manifest) in repository
// name, whose layout exists.
func (s *Store) putBlobBytes(ctx context.Context, name string, d digest.Digest, b []byte) error {
	if fi, err := os.Stat(s.repoBlobPath(name, d)); err == nil && fi.Size() == int64(len(b)) {
		s.TouchBlob(name, d) // pushed again (an index's child): recent for gc
		return nil
	}
	f, err := os.CreateTemp(filepath.Join(s.root, uploadsDirName), tmpPrefix+"manifest-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(filePerm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("repository %s: store %s: %w", name, d, err)
	}
	return s.storeVerified(ctx, name, d, tmp, true)
}

// MountAny links blob d into repository name if any repository of the store
// holds it (the shared copy exists). It returns the blob's size.
func (s *Store) MountAny(ctx context.Context, name string, d digest.Digest) (int64, error) {
	fi, err := os.Stat(s.sharedBlobPath(d))
	if err != nil || !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("blob %s: %w", d, ErrBlobUnknown)
	}
	if err := s.linkIntoRepo(ctx, name, d, ""); err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
