package archive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/atomicfile"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/layer"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// tarWriter builds a tar in a staging directory beside its final name.
// Entries are appended under mu; an entry whose content fails is cut off
// again (truncate back to where it started), so the tar only ever holds
// whole, verified members.
type tarWriter struct {
	final string
	stage string // staging directory: the tar and spill files
	held  *atomicfile.StageDir

	mu      sync.Mutex
	f       *os.File
	tw      *tar.Writer
	entries map[string]int64 // name -> size of members written
	// made are the directories above the archive this writer made,
	// removed again (when empty) if it gives the archive up.
	made []string
	// compress is how commit compresses the archive: as the one it adds
	// to was (carryOver), else not at all.
	compress layer.Compression
	done     bool
	unlock   func() // releases the archive's writer lock
}

// lockWait bounds how long a writer waits for another writing the same
// archive.
var lockWait = time.Minute

// modTime is the time stamp of every member, so that archives of the same
// content are byte-identical.
var modTime = time.Unix(0, 0).UTC()

// newTarWriter starts a new archive to replace final when committed.
// One writer at a time holds an archive, from here to its commit or
// discard: a writer carries the archive's images over into the new one, so
// two at once would each replace the other's (the last rename wins). The
// lock is a flock on a hidden file beside the archive, there while a
// writer holds it (the kernel releases it if the plugin dies); a second
// writer waits for it, at most lockWait.
func newTarWriter(ctx context.Context, final string) (*tarWriter, error) {
	abs, err := filepath.Abs(final)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", final, err)
	}
	// A symlink is written through: see atomicfile.FollowLinks.
	if abs, err = atomicfile.FollowLinks(abs); err != nil {
		return nil, fmt.Errorf("archive %s: %w", final, err)
	}
	if fi, err := os.Stat(abs); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("archive %s: exists and is not a regular file: %w", final, core.ErrExists)
	}
	parent := filepath.Dir(abs)
	made, err := atomicfile.MkdirParents(parent)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", final, err)
	}
	lockName := filepath.Join(parent, "."+filepath.Base(abs)+".stevedore-lock")
	lctx, cancel := context.WithTimeout(ctx, lockWait)
	unlock, err := atomicfile.LockTransient(lctx, lockName)
	cancel()
	if err != nil {
		atomicfile.RemoveMadeDirs(made)
		if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("archive %s: another writer has held it for %s (lock %s); try again when it is done: %w", final, lockWait, lockName, core.ErrUnavailable)
		}
		return nil, fmt.Errorf("archive %s: %w", final, err)
	}
	// What writers killed outright left behind (a live one holds its
	// staging directory).
	prefix := "." + filepath.Base(abs) + ".stevedore-tmp-"
	atomicfile.SweepStageDirs(parent, prefix)
	held, err := atomicfile.MkdirStage(parent, prefix)
	if err != nil {
		unlock()
		atomicfile.RemoveMadeDirs(made)
		return nil, fmt.Errorf("archive %s: staging directory: %w", final, err)
	}
	stage := held.Path
	f, err := os.Create(filepath.Join(stage, "archive.tar"))
	if err != nil {
		os.RemoveAll(stage)
		held.Release()
		unlock()
		atomicfile.RemoveMadeDirs(made)
		return nil, fmt.Errorf("archive %s: %w", final, err)
	}
	return &tarWriter{final: abs, stage: stage, held: held, f: f, tw: tar.NewWriter(f), entries: map[string]int64{}, unlock: unlock, made: made}, nil
}

// release gives up the writer lock, once. Callers hold mu.
func (w *tarWriter) release() {
	w.held.Release()
	if w.unlock != nil {
		w.unlock()
		w.unlock = nil
	}
}

func (w *tarWriter) has(name string, size int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.entries[name]
	return ok && s == size
}

// dirsLocked writes the directory members leading to name, recording
// their names in added.
func (w *tarWriter) dirsLocked(name string, added *[]string) error {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	if _, ok := w.entries[dir+"/"]; ok {
		return nil
	}
	if err := w.dirsLocked(dir, added); err != nil {
		return err
	}
	hdr := &tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: modTime, Format: tar.FormatPAX}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return err
	}
	w.entries[dir+"/"] = 0
	*added = append(*added, dir+"/")
	return nil
}

// appendLocked writes a member of size bytes read from r. check, if set,
// runs after the content was copied and may refuse it. On any error the
// member is removed again.
func (w *tarWriter) appendLocked(name string, size int64, r io.Reader, check func() error) (err error) {
	if w.done {
		return fmt.Errorf("archive %s: already committed or closed: %w", w.final, core.ErrInvalid)
	}
	if err := w.tw.Flush(); err != nil {
		return err
	}
	start, err := w.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	var added []string
	defer func() {
		if err != nil {
			// Cut the partial member off and start a fresh tar.Writer
			// (the old one still expects the missing bytes).
			if terr := w.f.Truncate(start); terr == nil {
				_, _ = w.f.Seek(start, io.SeekStart)
			}
			w.tw = tar.NewWriter(w.f)
			for _, n := range added {
				delete(w.entries, n)
			}
		}
	}()
	if err := w.dirsLocked(name, &added); err != nil {
		return err
	}
	hdr := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: modTime, Format: tar.FormatPAX}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(w.tw, r)
	if err != nil {
		return err
	}
	if n != size {
		return &core.SizeMismatchError{Expected: size, Actual: n}
	}
	if check != nil {
		if err := check(); err != nil {
			return err
		}
	}
	if err := w.tw.Flush(); err != nil {
		return err
	}
	w.entries[name] = size
	return nil
}

// putBytes appends small content.
func (w *tarWriter) putBytes(name string, b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s, ok := w.entries[name]; ok && s == int64(len(b)) {
		return nil
	}
	return w.appendLocked(name, int64(len(b)), bytesReader(b), nil)
}

// putVerified appends a blob read from r as name, verified against desc.
// When another blob is being appended, r is spilled to a verified temporary
// file first so that slow sources do not wait on each other.
func (w *tarWriter) putVerified(ctx context.Context, name string, desc ocispec.Descriptor, r io.Reader) error {
	if w.mu.TryLock() {
		defer w.mu.Unlock()
		if s, ok := w.entries[name]; ok && s == desc.Size {
			return nil
		}
		vr := verifier(ctx, r, desc)
		return w.appendLocked(name, desc.Size, vr, func() error {
			// The VerifyReader reports a mismatch instead of EOF; make
			// sure it reached EOF (io.Copy stops at exactly size bytes
			// only if the stream ended there).
			if _, err := io.Copy(io.Discard, vr); err != nil {
				return err
			}
			if !vr.Verified() {
				return fmt.Errorf("%s: stream ended unverified: %w", desc.Digest, core.ErrInvalid)
			}
			return nil
		})
	}
	f, err := w.spill(ctx, desc, r)
	if err != nil {
		return err
	}
	defer w.dropSpill(f)
	return w.putFile(name, f, desc.Size)
}

// verifier checks r against desc: its size, and its digest unless the host
// verifies the stream itself (pluginapi.HostVerified), so that the bytes are
// not hashed twice.
func verifier(ctx context.Context, r io.Reader, desc ocispec.Descriptor) *content.VerifyReader {
	if pluginapi.HostVerified(ctx) {
		return content.NewSizeReader(ctxReader{ctx, r}, desc)
	}
	return content.NewVerifyReader(ctxReader{ctx, r}, desc)
}

// spill writes r, verified against desc, to a temporary file and rewinds it.
func (w *tarWriter) spill(ctx context.Context, desc ocispec.Descriptor, r io.Reader) (*os.File, error) {
	f, err := os.CreateTemp(w.stage, "spill-*")
	if err != nil {
		return nil, err
	}
	vr := verifier(ctx, r, desc)
	if _, err := io.Copy(f, vr); err != nil {
		w.dropSpill(f)
		return nil, err
	}
	if !vr.Verified() {
		w.dropSpill(f)
		return nil, fmt.Errorf("%s: stream ended unverified: %w", desc.Digest, core.ErrInvalid)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		w.dropSpill(f)
		return nil, err
	}
	return f, nil
}

func (w *tarWriter) dropSpill(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

// putFile appends the content of an already verified local file.
func (w *tarWriter) putFile(name string, f *os.File, size int64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s, ok := w.entries[name]; ok && s == size {
		return nil
	}
	return w.appendLocked(name, size, f, nil)
}

// commit finishes the tar and renames it to the final name.
func (w *tarWriter) commit() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return fmt.Errorf("archive %s: already committed or closed: %w", w.final, core.ErrInvalid)
	}
	if err := w.tw.Close(); err != nil {
		return fmt.Errorf("archive %s: %w", w.final, err)
	}
	if w.compress != layer.Uncompressed {
		if err := w.compressLocked(); err != nil {
			return fmt.Errorf("archive %s: %s: %w", w.final, w.compress, err)
		}
	}
	if err := w.f.Chmod(atomicfile.ModeFor(w.final)); err != nil {
		return fmt.Errorf("archive %s: %w", w.final, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("archive %s: %w", w.final, err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("archive %s: %w", w.final, err)
	}
	w.done = true
	defer w.release()
	if err := os.Rename(w.f.Name(), w.final); err != nil {
		os.RemoveAll(w.stage)
		return fmt.Errorf("archive %s: %w", w.final, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(w.final)); err != nil {
		return fmt.Errorf("archive %s: %w", w.final, err)
	}
	return os.RemoveAll(w.stage)
}

// compressAs makes the archive written compressed as old, the archive it
// adds to, is: written uncompressed under a name like x.tar.gz, it would
// no longer be what its name and its readers expect. bzip2 is read but
// cannot be written (the standard library has no writer): refused.
func (w *tarWriter) compressAs(old *tarFile) error {
	switch old.compression {
	case layer.Uncompressed, layer.Gzip, layer.Zstd:
		w.mu.Lock()
		w.compress = old.compression
		w.mu.Unlock()
		return nil
	}
	return fmt.Errorf("archive %s: %s-compressed: it can be read, not added to (write to a new file, or decompress it first): %w", w.final, old.compression, core.ErrUnsupported)
}

// compressLocked replaces w.f, the staged tar, by a compressed copy of it
// in the staging directory (the tar goes with the directory).
func (w *tarWriter) compressLocked() error {
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	out, err := os.Create(w.f.Name() + "." + w.compress.String())
	if err != nil {
		return err
	}
	var cw io.WriteCloser
	switch w.compress {
	case layer.Gzip:
		cw = gzip.NewWriter(out)
	case layer.Zstd:
		if cw, err = zstd.NewWriter(out); err != nil {
			out.Close()
			return err
		}
	default:
		out.Close()
		return fmt.Errorf("cannot write %s: %w", w.compress, core.ErrUnsupported)
	}
	if _, err := io.Copy(cw, w.f); err != nil {
		cw.Close()
		out.Close()
		return err
	}
	if err := cw.Close(); err != nil {
		out.Close()
		return err
	}
	w.f.Close()
	w.f = out
	return nil
}

// discard removes everything not committed.
func (w *tarWriter) discard() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.done = true
		w.f.Close()
	}
	err := os.RemoveAll(w.stage)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	w.release() // the lock file goes too: the directories may be empty
	atomicfile.RemoveMadeDirs(w.made)
	return err
}
