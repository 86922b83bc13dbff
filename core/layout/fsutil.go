package layout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// filePerm is the mode of files made visible in the layout. Temporary files
// are created 0600 and widened just before they are renamed into place.
const filePerm = 0o644

// tmpPrefix starts the name of every temporary file Stevedore leaves in a
// layout while writing; such files are never valid blob names.
const tmpPrefix = ".tmp-"

// ctxReader stops a copy promptly once ctx is done.
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

// syncDir makes a rename or a new entry in dir durable.
func syncDir(dir string) error {
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

// randomName returns a fresh temporary file name in dir.
func randomName(dir, hint string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return filepath.Join(dir, tmpPrefix+hint+"-"+hex.EncodeToString(b[:]))
}

// writeFileAtomic replaces path with data: temp file in the same directory,
// fsync, rename, directory fsync. Readers see the old or the new content,
// never a mix.
func writeFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tmpPrefix+filepath.Base(path)+"-*")
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
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(filePerm); err != nil {
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
	return syncDir(dir)
}

// isNotExist reports a missing file, also when a path component is a
// regular file (ENOTDIR).
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist)
}

// removeQuiet removes a temporary file; a failure is ignored because the
// caller is already reporting a better error (or succeeded).
func removeQuiet(path string) { _ = os.Remove(path) }
