package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// StageDir is a staging directory that its writer holds while it works:
// a shared flock on the directory itself, which the kernel drops when the
// process dies, however it dies. SweepStageDirs removes the ones no live
// writer holds (a SIGKILL, a crash or a power loss leaves them behind).
type StageDir struct {
	Path string
	f    *os.File
}

// stageGrace is how long a staging directory is left alone although
// unheld: the moment between its creation and its writer's lock, and, where
// a lock is not seen by every writer (a filesystem whose flock is local to
// one host, a writer from before these locks), a whole write: the
// directory's time changes only when an entry is made, not while a large
// file in it is written. A writer killed outright leaves its directory for
// at most that long.
var stageGrace = time.Hour

// MkdirStage creates a staging directory in parent, named prefix followed
// by a random suffix, and holds it.
func MkdirStage(parent, prefix string) (*StageDir, error) {
	p, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		os.RemoveAll(p)
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		// A filesystem without flock (some network ones): the directory
		// is not held, and no sweeper can lock it to remove it either.
		f.Close()
		return &StageDir{Path: p}, nil
	}
	return &StageDir{Path: p, f: f}, nil
}

// Release lets the directory go (call it once the directory was renamed
// into place or removed). It may be called more than once.
func (s *StageDir) Release() {
	if s != nil && s.f != nil {
		_ = s.f.Close() // closing the descriptor drops the lock
		s.f = nil
	}
}

// SweepStageDirs removes the directories in parent named prefix followed
// by anything that no writer holds and that have not changed for a while,
// and returns how many it removed. Errors are ignored: sweeping is a
// courtesy, never a reason to fail the write that does it.
func SweepStageDirs(parent, prefix string) int {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return 0
	}
	before := time.Now().Add(-stageGrace)
	n := 0
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		p := filepath.Join(parent, e.Name())
		if fi, err := e.Info(); err != nil || !fi.ModTime().Before(before) {
			continue
		}
		if sweepOne(p) {
			n++
		}
	}
	return n
}

// sweepOne removes p if no writer holds it: it takes p's lock exclusively
// for the removal, so a writer cannot take it meanwhile.
func sweepOne(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return false // held (EWOULDBLOCK), or not lockable: leave it
	}
	err = os.RemoveAll(p)
	return err == nil || errors.Is(err, os.ErrNotExist)
}
