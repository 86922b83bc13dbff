//go:build !linux && !darwin && !freebsd && !netbsd

package atomicfile

import (
	"io/fs"
	"time"
)

// ChangeTime is a file's modification time here (no inode change time is
// read on this system).
func ChangeTime(fi fs.FileInfo) time.Time { return fi.ModTime() }
