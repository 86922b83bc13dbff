package storage

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"syscall"
	"time"

	specs "github.com/opencontainers/image-spec/specs-go"
)

var syscallENOTDIR = syscall.ENOTDIR

func specsVersioned() specs.Versioned { return specs.Versioned{SchemaVersion: 2} }

func statID(fi fs.FileInfo) fileID {
	id := fileID{size: uint64(fi.Size()), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ino = st.Ino
		id.ctim = st.Ctim.Nano()
	}
	return id
}

// ctime is when the file's inode last changed (written, renamed, linked or
// unlinked); gc uses it as "last touched by the server".
func ctime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	}
	return fi.ModTime()
}

func nlink(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
