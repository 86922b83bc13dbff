package atomicfile

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
)

func TestWriteVerified(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "f")
	good := []byte("hello")
	desc := ocispec.Descriptor{Digest: digest.FromBytes(good), Size: 5}
	if err := WriteVerified(context.Background(), path, desc, bytes.NewReader(good)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "hello" {
		t.Fatalf("content %q", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != Perm {
		t.Fatalf("mode %v", fi.Mode())
	}
	// Wrong content: refused, the old file stays, no temp file is left.
	err := WriteVerified(context.Background(), path, desc, bytes.NewReader([]byte("hellO")))
	if !errors.Is(err, core.ErrDigestMismatch) {
		t.Fatalf("err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WriteVerified(ctx, path, desc, bytes.NewReader(good)); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "hello" {
		t.Fatalf("old content lost: %q", b)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
	if err := Write(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Fatalf("Write: %q", b)
	}
}

func TestWriteback(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := NewWriteback(f)
	chunk := bytes.Repeat([]byte("w"), 3<<20)
	for i := 0; i < 7; i++ {
		if n, err := w.Write(chunk); err != nil || n != len(chunk) {
			t.Fatalf("write: %d, %v", n, err)
		}
	}
	w.Wait()
	// Requests go at 9 MiB, then at 18 MiB, or at 21 MiB when the first
	// was still running at 18.
	if (w.requested != 18<<20 && w.requested != 21<<20) || w.off != 21<<20 || w.busy.Load() {
		t.Fatalf("writeback requested up to %d of %d (busy %v)", w.requested, w.off, w.busy.Load())
	}
	if fi, _ := f.Stat(); fi.Size() != 21<<20 {
		t.Fatalf("size %d", fi.Size())
	}
}

// A new file gets Perm less the umask; a replaced file keeps its mode (an
// archive made private stays private).
func TestWriteModes(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh")
	if err := Write(fresh, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != Perm&^umask() {
		t.Fatalf("new file mode %v, want %v", fi.Mode().Perm(), Perm&^umask())
	}
	private := filepath.Join(dir, "private")
	if err := os.WriteFile(private, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(private, 0o600)
	if err := Write(private, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(private); fi.Mode().Perm() != 0o600 {
		t.Fatalf("replaced file mode %v, want 0600", fi.Mode().Perm())
	}
	if DirModeFor(dir) != mustStat(t, dir).Mode().Perm() || DirModeFor(filepath.Join(dir, "none")) != 0o755&^umask() {
		t.Fatal("DirModeFor")
	}
}

func mustStat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// LockTransient excludes other holders as Lock does, and its file exists
// only while it is held, also when waiters were queued on a file the
// holder removed.
func TestLockTransient(t *testing.T) {
	name := filepath.Join(t.TempDir(), ".x.lock")
	var inside, overlaps, total atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				unlock, err := LockTransient(context.Background(), name)
				if err != nil {
					t.Error(err)
					return
				}
				if inside.Add(1) > 1 {
					overlaps.Add(1)
				}
				total.Add(1)
				inside.Add(-1)
				unlock()
			}
		}()
	}
	wg.Wait()
	if overlaps.Load() > 0 || total.Load() != 400 {
		t.Fatalf("%d of %d holds overlapped another", overlaps.Load(), total.Load())
	}
	if _, err := os.Stat(name); !os.IsNotExist(err) {
		t.Fatalf("the lock file is left: %v", err)
	}
	unlock, err := LockTransient(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := LockTransient(ctx, name); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second holder: %v, want it to wait until its context ends", err)
	}
	unlock()
}
