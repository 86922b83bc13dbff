// Package atomicfile writes files so that they appear whole and verified or
// not at all: a temporary file in the target's directory, content verified
// against its descriptor, fsync, rename, directory fsync. Every store in
// Stevedore (layouts, dir:, static trees, the registry server) writes this
// way. It must never import host, plugins, pluginapi or cmd.
package atomicfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/content"
)

// Perm is the mode of files made visible, less the umask (FileMode; a file
// replaced keeps its mode, ModeFor). Temporary files are created 0600 and
// widened just before the rename.
const Perm = 0o644

// TmpPrefix starts the name of every temporary file; such names are never
// valid digests or tags.
const TmpPrefix = ".tmp-"

// ContextReader stops a copy promptly once ctx is done.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// SyncDir makes a rename or a new entry in dir durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteVerified writes r to path: the bytes go to a temporary file in the
// same directory (created if missing) and must match desc's size and digest
// before the file is fsynced and renamed into place. On any error nothing
// is left behind and an existing file at path is untouched.
func WriteVerified(ctx context.Context, path string, desc ocispec.Descriptor, r io.Reader) error {
	return replace(path, func(f *os.File) error {
		vr := content.NewVerifyReader(ContextReader(ctx, r), desc)
		if _, err := io.Copy(f, vr); err != nil {
			return err
		}
		if !vr.Verified() {
			return fmt.Errorf("%s: stream ended unverified: %w", path, core.ErrInvalid)
		}
		return nil
	})
}

// Write replaces path with data the same way: readers see the old or the
// new content, never a mix. (The bytes are the caller's own: nothing to
// verify, so they are not hashed.)
func Write(path string, data []byte) error {
	return replace(path, func(f *os.File) error {
		_, err := f.Write(data)
		return err
	})
}

// replace has fill write a temporary file in path's directory (created if
// missing), then fsyncs it and renames it over path. On any error nothing
// is left behind and an existing file at path is untouched.
func replace(path string, fill func(*os.File) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, TmpPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = fill(f); err != nil {
		return err
	}
	if err = f.Chmod(ModeFor(path)); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// OpenRegular opens path with flag (os.O_RDONLY, os.O_WRONLY...), refusing
// anything but a regular file. The open does not wait: a FIFO put in a
// blob's place would block a plain open, and then a read, until something
// wrote to it.
func OpenRegular(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file: %w", path, core.ErrInvalid)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Lock takes an exclusive flock on the file name (created if missing) and
// returns the func that releases it. flock locks belong to the open file
// description, so two goroutines of one process exclude each other exactly
// like two processes do, and the kernel releases the lock if the process
// dies. It polls with a non-blocking flock so that a cancelled ctx is
// honoured (a blocking flock cannot be interrupted without signals).
func Lock(ctx context.Context, name string) (unlock func(), err error) {
	f, err := lockFile(ctx, name)
	if err != nil {
		return nil, err
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		_ = f.Close()
	}, nil
}

// LockTransient is Lock on a lock file that exists only while it is held:
// the unlock removes it, still holding it. A waiter that then gets the
// lock of the removed file finds the name gone (or another file there)
// and locks again by name, so two holders never overlap.
func LockTransient(ctx context.Context, name string) (unlock func(), err error) {
	for {
		f, err := lockFile(ctx, name)
		if err != nil {
			return nil, err
		}
		held, err1 := f.Stat()
		named, err2 := os.Stat(name)
		if err1 == nil && err2 == nil && os.SameFile(held, named) {
			return func() {
				_ = os.Remove(name)
				_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		_ = f.Close()
		if err1 != nil {
			return nil, fmt.Errorf("lock %s: %w", name, err1)
		}
	}
}

// lockFile opens name (created if missing) and flocks it exclusively.
func lockFile(ctx context.Context, name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, Perm)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := Flock(ctx, f, unix.LOCK_EX); err != nil {
		_ = f.Close()
		if err == ctx.Err() {
			return nil, fmt.Errorf("waiting for lock %s: %w", name, err)
		}
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return f, nil
}

// Flock takes a flock of kind how (unix.LOCK_EX or unix.LOCK_SH) on f,
// polling with a non-blocking flock so that a cancelled ctx is honoured. It
// returns ctx's error when ctx ends first, else flock's.
func Flock(ctx context.Context, f *os.File, how int) error {
	wait := 200 * time.Microsecond
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if wait < 20*time.Millisecond {
			wait *= 2
		}
	}
}

// writebackChunk is how much written data may wait in the page cache before
// its writeback is started.
const writebackChunk = 8 << 20

// Writeback writes to f and asks the kernel to start writing back each 8 MiB
// as soon as it is written (sync_file_range, no waiting for the disk), so
// the fsync that makes the file durable waits for the tail instead of the
// whole file: the disk works while the bytes are still arriving. The
// request itself is made from another goroutine: sync_file_range blocks
// while the device queue is full, and the writer (a pipeline fed by a
// socket) must not stall on it. Call Wait before closing f.
type Writeback struct {
	f              *os.File
	fd             int
	off, requested int64
	busy           atomic.Bool
	inflight       sync.WaitGroup
}

// NewWriteback wraps f, which must be written from offset 0.
func NewWriteback(f *os.File) *Writeback { return &Writeback{f: f, fd: int(f.Fd())} }

// Write implements io.Writer.
func (w *Writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.requested >= writebackChunk && !w.busy.Load() {
		// One request at a time; one still running when the next 8 MiB
		// are written makes the next request cover both.
		start, length := w.requested, w.off-w.requested
		w.requested = w.off
		w.busy.Store(true)
		w.inflight.Add(1)
		go func() {
			defer w.inflight.Done()
			// Advisory: an error here changes nothing the fsync will not see.
			startWriteback(w.fd, start, length)
			w.busy.Store(false)
		}()
	}
	return n, err
}

// Wait returns once no writeback request is in flight; call it before
// closing the file (the request uses its descriptor).
func (w *Writeback) Wait() { w.inflight.Wait() }
