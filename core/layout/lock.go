package layout

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// lock takes the layout's exclusive lock, waiting until it is free or ctx is
// done. flock locks belong to the open file description, so two goroutines
// of one process exclude each other exactly like two processes do. The lock
// is released by the returned func (and by the kernel if the process dies).
func (s *Store) lock(ctx context.Context) (unlock func(), err error) {
	name := filepath.Join(s.dir, lockFile)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, filePerm)
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: open lock file: %w", s.dir, err)
	}
	// Poll with a non-blocking flock so a cancelled ctx is honoured; a
	// blocking flock cannot be interrupted without signals.
	wait := 500 * time.Microsecond
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() {
				_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("oci layout %s: lock: %w", s.dir, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			_ = f.Close()
			return nil, fmt.Errorf("oci layout %s: waiting for lock: %w", s.dir, ctx.Err())
		case <-t.C:
		}
		if wait < 20*time.Millisecond {
			wait *= 2
		}
	}
}
