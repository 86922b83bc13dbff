package layout

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/stevedore-oci/stevedore/core/atomicfile"
)

// tmpPrefix starts the name of every temporary file Stevedore leaves in a
// layout while writing; such files are never valid blob names.
const tmpPrefix = atomicfile.TmpPrefix

// randomName returns a fresh temporary file name in dir.
func randomName(dir, hint string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(dir, tmpPrefix+hint+"-"+hex.EncodeToString(b[:]))
}

// isNotExist reports a missing file, also when a path component is a
// regular file (ENOTDIR).
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist)
}

// removeQuiet removes a temporary file; a failure is ignored because the
// caller is already reporting a better error (or succeeded).
func removeQuiet(path string) { _ = os.Remove(path) }
