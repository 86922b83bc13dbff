package layout

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/atomicfile"
)

// Writer is a process writing a layout, from NewWriter to Release or
// Discard. It holds a shared flock on the layout directory all along, so
// that the writer that created the layout can tell, when it gives up,
// whether another writer has it too, and a writer arriving while a layout
// is being discarded waits and creates it afresh.
type Writer struct {
	dir     string
	f       *os.File // the directory, flocked shared
	created bool     // this writer wrote the oci-layout marker
	// made are the directories this writer made, outermost first
	// (missing parents, the layout directory, blobs).
	made []string
	// pre are the names the directory held before (files of its owner,
	// left alone by Discard).
	pre map[string]bool

	once sync.Once
}

// NewWriter opens the layout at dir for writing, creating it as Create does
// when missing (with the directory and its missing parents), and returns
// its Store. Release or Discard the Writer when done.
func NewWriter(ctx context.Context, dir string) (*Store, *Writer, error) {
	if dir == "" {
		return nil, nil, fmt.Errorf("oci layout: empty directory name: %w", core.ErrInvalid)
	}
	for i := 0; ; i++ {
		s, w, err := newWriter(ctx, dir)
		if !errors.Is(err, errDiscarded) || i == 10 {
			return s, w, err
		}
		// The layout was discarded while this writer waited for it:
		// create it again.
	}
}

var errDiscarded = errors.New("the layout was removed meanwhile by the writer that created it")

func newWriter(ctx context.Context, dir string) (*Store, *Writer, error) {
	w := &Writer{dir: dir}
	blobs := filepath.Join(dir, ocispec.ImageBlobsDir)
	if entries, err := os.ReadDir(dir); err == nil {
		w.pre = make(map[string]bool, len(entries))
		for _, e := range entries {
			w.pre[e.Name()] = true
		}
	}
	// The directory, its missing parents and blobs: made, and recorded
	// for Discard.
	made, err := atomicfile.MkdirParents(blobs)
	if err != nil {
		return nil, nil, fmt.Errorf("oci layout %s: create: %w", dir, err)
	}
	w.made = made
	f, err := os.Open(dir)
	if err != nil {
		if isNotExist(err) {
			err = errDiscarded
		}
		return nil, nil, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	if err := atomicfile.Flock(ctx, f, unix.LOCK_SH); err != nil {
		f.Close()
		if err == ctx.Err() {
			return nil, nil, fmt.Errorf("oci layout %s: waiting for the layout's lock: %w", dir, err)
		}
		return nil, nil, fmt.Errorf("oci layout %s: lock: %w", dir, err)
	}
	if !sameDir(f, dir) {
		f.Close()
		return nil, nil, fmt.Errorf("oci layout %s: %w", dir, errDiscarded)
	}
	w.f = f
	s := &Store{dir: dir}
	created, err := s.init()
	if err != nil {
		w.Release()
		return nil, nil, err
	}
	w.created = created
	return s, w, nil
}

// Created reports whether this writer created the layout: the directory
// held no oci-layout marker before.
func (w *Writer) Created() bool { return w.created }

// Release gives the layout up, as it is.
func (w *Writer) Release() {
	w.once.Do(func() {
		_ = unix.Flock(int(w.f.Fd()), unix.LOCK_UN)
		_ = w.f.Close()
	})
}

// Discard removes what this writer created, if the layout holds nothing
// since: it must be the writer that created the layout (Created), hold the
// only Writer of it (in any process), and find index.json listing nothing,
// no blob, no temporary file, and no name in the directory that neither it
// nor the directory's owner made. Then index.json, oci-layout, the lock file
// and the directories it made (blobs, the layout directory and missing
// parents, when empty) are removed; files the directory held before stay.
// Otherwise nothing is removed: blobs are kept so that a copy run again does
// not fetch them again. Either way the Writer is released. It reports
// whether the layout was removed.
//
// A copy that fails into a new layout before it wrote a blob (a source
// that cannot be read, a refused platform, a first blob that fails) leaves
// nothing behind this way, where skopeo leaves an empty layout.
func (w *Writer) Discard(s *Store) (removed bool, err error) {
	defer w.Release()
	if !w.created || s == nil || s.dir != w.dir {
		return false, nil
	}
	// Exclusive: no other Writer holds the layout. (A failed conversion
	// may drop the shared lock: the Writer is released anyway.)
	if err := unix.Flock(int(w.f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return false, nil
	}
	if !sameDir(w.f, w.dir) {
		return false, nil
	}
	// And no index.json update by a writer that is no Writer.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	unlock, err := s.lock(ctx)
	if err != nil {
		return false, nil
	}
	defer unlock()
	remove, ok := w.discardable(s)
	if !ok {
		return false, nil
	}
	for _, p := range remove {
		if err := os.Remove(p); err != nil && !isNotExist(err) {
			return false, fmt.Errorf("oci layout %s: discard: %w", w.dir, err)
		}
	}
	// The directories made, innermost first, while empty: a file put in
	// one meanwhile keeps it.
	atomicfile.RemoveMadeDirs(w.made)
	return true, nil
}

// discardable lists what Discard removes (blobs, then the layout's own
// files and directories, innermost first), or says the layout holds
// something this writer did not put there.
func (w *Writer) discardable(s *Store) (remove []string, ok bool) {
	idx, err := s.readIndex()
	if err != nil || len(idx.Manifests) > 0 || len(idx.Annotations) > 0 {
		return nil, false
	}
	own := []string{ocispec.ImageBlobsDir, tmpDirName, ocispec.ImageIndexFile, ocispec.ImageLayoutFile, lockFile}
	for _, name := range own {
		if w.pre[name] {
			return nil, false // not the writer's to remove
		}
	}
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return nil, false
	}
	for _, e := range entries {
		if !w.pre[e.Name()] && !slices.Contains(own, e.Name()) {
			return nil, false // someone else's
		}
	}
	if tmp, err := os.ReadDir(s.tmpDir()); err == nil && len(tmp) > 0 {
		return nil, false // a write in progress, or a staged blob
	} else if err != nil && !isNotExist(err) {
		return nil, false
	}
	blobs := filepath.Join(w.dir, ocispec.ImageBlobsDir)
	algs, err := os.ReadDir(blobs)
	if err != nil {
		return nil, false
	}
	for _, a := range algs {
		if !a.IsDir() {
			return nil, false
		}
		ad := filepath.Join(blobs, a.Name())
		files, err := os.ReadDir(ad)
		if err != nil || len(files) > 0 {
			// A blob: kept, with its layout, so that the copy run again
			// does not fetch it again (a large image that failed near its
			// end would start over).
			return nil, false
		}
		remove = append(remove, ad)
	}
	for _, name := range own {
		if name == lockFile || name == ocispec.ImageBlobsDir {
			continue // the lock file last (it is held); blobs is a made directory
		}
		remove = append(remove, filepath.Join(w.dir, name))
	}
	return append(remove, filepath.Join(w.dir, lockFile)), true
}

// sameDir reports whether the open directory f is still the one at dir
// (not removed by a Discard, nor replaced).
func sameDir(f *os.File, dir string) bool {
	held, err1 := f.Stat()
	named, err2 := os.Stat(dir)
	return err1 == nil && err2 == nil && os.SameFile(held, named)
}
