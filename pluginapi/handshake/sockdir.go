package handshake

import (
	"os"
	"path"
)

// maxSocketBase bounds the directory under which socket directories are
// made: a unix socket path must stay under ~104 bytes.
const maxSocketBase = 64

// It uses package path, not path/filepath (the same on Unix), whose
// initialisation comes late in a program's (see host/prestart).

// MkdirSockets makes a private (0700) directory for unix sockets, named
// prefix followed by random characters: under $XDG_RUNTIME_DIR when it is
// set and usable (a per-user tmpfs on most systems, where sockets belong,
// and where making them costs less than on a /tmp that is on disk), else
// under the temporary directory, else under /tmp (when those are too long
// for socket paths, missing or not writable).
func MkdirSockets(prefix string) (string, error) {
	var bases []string
	if d := os.Getenv("XDG_RUNTIME_DIR"); path.IsAbs(d) && len(d) <= maxSocketBase {
		bases = append(bases, d)
	}
	if d := os.TempDir(); len(d) <= maxSocketBase {
		bases = append(bases, d)
	}
	bases = append(bases, "/tmp")
	var first error
	for _, base := range bases {
		dir, err := os.MkdirTemp(base, prefix)
		if err == nil {
			if err = os.Chmod(dir, 0o700); err == nil {
				return dir, nil
			}
			os.RemoveAll(dir)
		}
		if first == nil {
			first = err
		}
	}
	return "", first
}
