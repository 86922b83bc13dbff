package atomicfile

import (
	"io/fs"
	"syscall"
	"time"
)

// ChangeTime is when a file's inode last changed (a write, a rename, a new
// hard link); where the system does not say, its modification time.
func ChangeTime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Unix())
	}
	return fi.ModTime()
}
