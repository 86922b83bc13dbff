package storage

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"syscall"
	"time"

	specs "github.com/opencontainers/image-spec/specs-go"
	"github.com/stevedore-oci/stevedore/core/atomicfile"
)

var syscallENOTDIR = syscall.ENOTDIR

func specsVersioned() specs.Versioned { return specs.Versioned{SchemaVersion: 2} }

func statID(fi fs.FileInfo) fileID {
	id := fileID{size: uint64(fi.Size()), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ino = uint64(st.Ino)
	}
	id.ctim = atomicfile.ChangeTime(fi).UnixNano()
	return id
}

// ctime is when the file's inode last changed (written, renamed, linked or
// unlinked); gc uses it as "last touched by the server".
func ctime(fi fs.FileInfo) time.Time { return atomicfile.ChangeTime(fi) }

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
