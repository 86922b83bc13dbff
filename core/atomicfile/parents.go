package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// MkdirParents makes dir and the directories above it that are missing, as
// os.MkdirAll does, and returns the ones it made, outermost first, for
// RemoveMadeDirs to take back when what was to go there is given up.
func MkdirParents(dir string) (made []string, err error) {
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		made = append([]string{p}, made...)
		if filepath.Dir(p) == p {
			break
		}
	}
	err = os.MkdirAll(dir, 0o755)
	for i := 0; i < 3 && errors.Is(err, fs.ErrNotExist); i++ {
		// A parent seen was removed before its child was made (another
		// writer gave up the directory they both made): make it again.
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return nil, err
	}
	return made, nil
}

// RemoveMadeDirs removes the directories MkdirParents made, innermost
// first, as long as they are empty (one already gone counts as removed):
// one that holds anything (another writer's file) stays, and so do those
// above it.
func RemoveMadeDirs(made []string) {
	for i := len(made) - 1; i >= 0; i-- {
		if err := os.Remove(made[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return
		}
	}
}
