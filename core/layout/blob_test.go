package layout

import (
	"bytes"
	"context"
	"crypto/sha512"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/atomicfile"
	"github.com/stevedore-oci/stevedore/core/content"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Create(filepath.Join(t.TempDir(), "layout"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWriteBlob(t *testing.T) {
	ctx := context.Background()
	data := []byte("hello, layout")
	good := newBlob("application/octet-stream", data)
	sha512Desc := ocispec.Descriptor{Digest: digest.SHA512.FromBytes(data), Size: int64(len(data))}
	wrongDigest := good.desc
	wrongDigest.Digest = digest.FromString("something else")
	tests := []struct {
		name    string
		desc    ocispec.Descriptor
		data    []byte
		wantErr error
	}{
		{"sha256", good.desc, data, nil},
		{"sha512", sha512Desc, data, nil},
		{"empty", newBlob("x", nil).desc, nil, nil},
		{"wrong digest", wrongDigest, data, core.ErrDigestMismatch},
		{"too short", ocispec.Descriptor{Digest: good.desc.Digest, Size: good.desc.Size + 1}, data, core.ErrSizeMismatch},
		{"too long", ocispec.Descriptor{Digest: digest.FromBytes(data[:len(data)-1]), Size: good.desc.Size - 1}, data, core.ErrSizeMismatch},
		{"too long, other digest", ocispec.Descriptor{Digest: good.desc.Digest, Size: good.desc.Size - 1}, data, core.ErrDigestMismatch},
		{"invalid digest", ocispec.Descriptor{Digest: "sha256:../../etc", Size: 1}, data, core.ErrInvalid},
		{"unsupported algorithm", ocispec.Descriptor{Digest: "md5:d41d8cd98f00b204e9800998ecf8427e", Size: 1}, data, core.ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			err := s.WriteBlob(ctx, tt.desc, bytes.NewReader(tt.data))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("WriteBlob error = %v, want %v", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), s.Dir()) {
					t.Errorf("error %q does not name the layout", err)
				}
				if tt.desc.Digest.Validate() == nil {
					if ok, _ := s.HasBlob(ctx, tt.desc); ok {
						t.Fatal("rejected blob is visible")
					}
					if _, err := s.Stat(ctx, tt.desc.Digest); !errors.Is(err, core.ErrNotFound) {
						t.Fatalf("Stat after rejected write = %v, want ErrNotFound", err)
					}
				}
				if left := tmpFiles(t, s.Dir()); len(left) > 0 {
					t.Fatalf("temporary files left: %v", left)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p, _ := s.BlobPath(tt.desc.Digest)
			wantPath := filepath.Join(s.Dir(), "blobs", tt.desc.Digest.Algorithm().String(), tt.desc.Digest.Encoded())
			if p != wantPath {
				t.Fatalf("BlobPath = %s, want %s", p, wantPath)
			}
			got, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(got, tt.data) {
				t.Fatalf("blob file = %q, %v", got, err)
			}
			if fi, _ := os.Stat(p); fi.Mode().Perm() != atomicfile.FileMode() {
				t.Errorf("blob mode %v, want %v", fi.Mode().Perm(), atomicfile.FileMode())
			}
			if ok, err := s.HasBlob(ctx, tt.desc); !ok || err != nil {
				t.Fatalf("HasBlob = %v, %v", ok, err)
			}
			// Idempotent: a present blob is not read again.
			if err := s.WriteBlob(ctx, tt.desc, failingReader{}); err != nil {
				t.Fatalf("second WriteBlob read the stream: %v", err)
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("must not be read") }

func TestWriteBlobSha512Path(t *testing.T) {
	s := newStore(t)
	data := []byte("sha512 content")
	sum := sha512.Sum512(data)
	d := digest.NewDigestFromBytes(digest.SHA512, sum[:])
	if err := s.WriteBlobBytes(context.Background(), ocispec.Descriptor{Digest: d, Size: int64(len(data))}, data); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "blobs", "sha512", d.Encoded())); err != nil {
		t.Fatal(err)
	}
}

func TestWriteBlobReaderErrorLeavesNothing(t *testing.T) {
	s := newStore(t)
	b := newBlob("x", bytes.Repeat([]byte("a"), 100000))
	r := io.MultiReader(bytes.NewReader(b.data[:5000]), failingReader{})
	if err := s.WriteBlob(context.Background(), b.desc, r); err == nil || !strings.Contains(err.Error(), "must not be read") {
		t.Fatalf("err = %v", err)
	}
	if ok, _ := s.HasBlob(context.Background(), b.desc); ok {
		t.Fatal("partial blob visible")
	}
	if left := tmpFiles(t, s.Dir()); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestWriteBlobCancelled(t *testing.T) {
	s := newStore(t)
	b := newBlob("x", bytes.Repeat([]byte("a"), 100000))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.WriteBlob(ctx, b.desc, bytes.NewReader(b.data)); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	r := &cancelAfter{r: bytes.NewReader(b.data), n: 10000, cancel: cancel}
	if err := s.WriteBlob(ctx, b.desc, r); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if ok, _ := s.HasBlob(context.Background(), b.desc); ok {
		t.Fatal("cancelled blob visible")
	}
	if left := tmpFiles(t, s.Dir()); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// cancelAfter cancels its context once n bytes have been read.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if len(p) > 4096 {
		p = p[:4096]
	}
	n, err := c.r.Read(p)
	c.n -= n
	if c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestWriteBlobReplacesWrongSizedFile(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	b := newBlob("x", []byte("the real content"))
	p, _ := s.BlobPath(b.desc.Digest)
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte("trunc"), 0o644)
	if ok, _ := s.HasBlob(ctx, b.desc); ok {
		t.Fatal("HasBlob true for a truncated file")
	}
	if err := s.WriteBlob(ctx, b.desc, bytes.NewReader(b.data)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, b.data) {
		t.Fatalf("blob = %q", got)
	}
}

func TestConcurrentWriteBlob(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	same := newBlob("x", bytes.Repeat([]byte("same"), 300000))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.WriteBlob(ctx, same.desc, bytes.NewReader(same.data))
			other := newBlob("x", bytes.Repeat([]byte{byte(i)}, 1000+i))
			errs <- s.WriteBlob(ctx, other.desc, bytes.NewReader(other.data))
		}()
	}
	go func() { wg.Wait(); close(errs) }()
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	got, err := s.ReadBlob(ctx, same.desc, 1<<30)
	if err != nil || !bytes.Equal(got, same.data) {
		t.Fatalf("ReadBlob: %v", err)
	}
	for i := range 16 {
		other := newBlob("x", bytes.Repeat([]byte{byte(i)}, 1000+i))
		if _, err := s.ReadBlob(ctx, other.desc, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if left := tmpFiles(t, s.Dir()); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func inode(t *testing.T, p string) uint64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestWriteBlobFileHardLink(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	b := newBlob("x", bytes.Repeat([]byte("linked"), 5000))
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, b.data, 0o600)
	if err := s.WriteBlobFile(ctx, b.desc, src); err != nil {
		t.Fatal(err)
	}
	p, _ := s.BlobPath(b.desc.Digest)
	if inode(t, p) != inode(t, src) {
		t.Fatal("blob was copied, not hard-linked, on one filesystem")
	}
	if fi, _ := os.Stat(src); fi.Mode().Perm() != 0o600 {
		t.Fatalf("source mode changed to %v", fi.Mode().Perm())
	}
	// Linking the same file again (rename over the same inode is a no-op in
	// the kernel) must not leave the temporary link behind.
	os.Remove(p)
	os.Link(src, p)
	if err := s.WriteBlobFile(ctx, b.desc, src); err != nil {
		t.Fatal(err)
	}
	if left := tmpFiles(t, s.Dir()); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// A source blob that is a symbolic link (absolute or relative) is linked
// as the file it names: the layout holds a regular file that outlives the
// link and its target's name.
func TestWriteBlobFileFollowsSymlinks(t *testing.T) {
	ctx := context.Background()
	for _, relative := range []bool{false, true} {
		s := newStore(t)
		b := newBlob("x", bytes.Repeat([]byte("via a symlink"), 3000))
		base := t.TempDir()
		ext := filepath.Join(base, "ext", "blob")
		os.MkdirAll(filepath.Dir(ext), 0o755)
		os.WriteFile(ext, b.data, 0o644)
		src := filepath.Join(base, "layout", "blobs", "sha256", "link")
		os.MkdirAll(filepath.Dir(src), 0o755)
		target := ext
		if relative {
			target = "../../../ext/blob"
		}
		if err := os.Symlink(target, src); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteBlobFile(ctx, b.desc, src); err != nil {
			t.Fatalf("relative %v: %v", relative, err)
		}
		p, _ := s.BlobPath(b.desc.Digest)
		if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("relative %v: the layout's blob is %v (%v), want a regular file", relative, fi.Mode(), err)
		}
		os.RemoveAll(filepath.Join(base, "ext"))
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, b.data) {
			t.Fatalf("relative %v: blob after its source went: %v", relative, err)
		}
	}
}

func TestWriteBlobFileRejectsWrongContent(t *testing.T) {
	ctx := context.Background()
	b := newBlob("x", bytes.Repeat([]byte("right"), 5000))
	wrong := bytes.Repeat([]byte("wrong"), 5000) // same size, other digest
	dirs := map[string]string{"same filesystem": ""}
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		dirs["other filesystem"] = "/dev/shm"
	}
	for name, base := range dirs {
		t.Run(name, func(t *testing.T) {
			s := newStore(t)
			dir := t.TempDir()
			if base != "" {
				var err error
				if dir, err = os.MkdirTemp(base, "layouttest"); err != nil {
					t.Skip(err)
				}
				t.Cleanup(func() { os.RemoveAll(dir) })
			}
			src := filepath.Join(dir, "src")
			os.WriteFile(src, wrong, 0o644)
			err := s.WriteBlobFile(ctx, b.desc, src)
			if !errors.Is(err, core.ErrDigestMismatch) {
				t.Fatalf("err = %v, want ErrDigestMismatch", err)
			}
			if ok, _ := s.HasBlob(ctx, b.desc); ok {
				t.Fatal("wrong content visible")
			}
			if left := tmpFiles(t, s.Dir()); len(left) > 0 {
				t.Fatalf("temporary files left: %v", left)
			}
			if err := s.WriteBlobFile(ctx, b.desc, filepath.Join(dir, "missing")); !errors.Is(err, core.ErrNotFound) {
				t.Fatalf("missing source: err = %v, want ErrNotFound", err)
			}
			os.WriteFile(src, b.data[:10], 0o644)
			if err := s.WriteBlobFile(ctx, b.desc, src); !errors.Is(err, core.ErrSizeMismatch) {
				t.Fatalf("short source: err = %v, want ErrSizeMismatch", err)
			}
		})
	}
}

func TestWriteBlobFileCrossFilesystemCopies(t *testing.T) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("/dev/shm", "layouttest")
	if err != nil {
		t.Skipf("no /dev/shm to test a cross-filesystem copy: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := newStore(t)
	var sdev, ldev uint64
	if fi, err := os.Stat(dir); err == nil {
		sdev = uint64(fi.Sys().(*syscall.Stat_t).Dev)
	}
	if fi, err := os.Stat(s.Dir()); err == nil {
		ldev = uint64(fi.Sys().(*syscall.Stat_t).Dev)
	}
	if sdev == ldev {
		t.Skip("/dev/shm is on the same filesystem as the temp dir")
	}
	b := newBlob("x", bytes.Repeat([]byte("copied"), 50000))
	src := filepath.Join(dir, "src")
	os.WriteFile(src, b.data, 0o600)
	if err := s.WriteBlobFile(ctx, b.desc, src); err != nil {
		t.Fatal(err)
	}
	p, _ := s.BlobPath(b.desc.Digest)
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, b.data) {
		t.Fatal("copied blob differs")
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != atomicfile.FileMode() {
		t.Errorf("copied blob mode %v", fi.Mode().Perm())
	}
}

func TestOpenBlobAndStatMissing(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	d := digest.FromString("absent")
	if _, err := s.OpenBlob(ctx, d); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("OpenBlob = %v", err)
	}
	if _, err := s.Stat(ctx, d); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("Stat = %v", err)
	}
	if ok, err := s.HasBlob(ctx, ocispec.Descriptor{Digest: d, Size: 6}); ok || err != nil {
		t.Fatalf("HasBlob = %v, %v", ok, err)
	}
}

// WriteBlobSized trusts its caller for the digest, but a caller's verifying
// reader cuts wrong content short, so it is still never visible; and the
// size is checked here.
func TestWriteBlobSized(t *testing.T) {
	ctx := context.Background()
	good := newBlob("application/octet-stream", bytes.Repeat([]byte("g"), 3<<20))
	bad := bytes.Repeat([]byte("g"), 3<<20)
	bad[len(bad)-1] = 'b'
	for _, tt := range []struct {
		name string
		r    io.Reader
		is   error
	}{
		{"verified wrong content", content.NewVerifyReader(bytes.NewReader(bad), good.desc), core.ErrDigestMismatch},
		{"short", bytes.NewReader(good.data[:100]), core.ErrSizeMismatch},
		{"long", io.MultiReader(bytes.NewReader(good.data), strings.NewReader("x")), core.ErrSizeMismatch},
	} {
		s := newStore(t)
		err := s.WriteBlobSized(ctx, good.desc, tt.r)
		if !errors.Is(err, tt.is) {
			t.Fatalf("%s: err = %v, want %v", tt.name, err, tt.is)
		}
		if ok, _ := s.HasBlob(ctx, good.desc); ok {
			t.Fatalf("%s: blob became visible", tt.name)
		}
	}
	s := newStore(t)
	if err := s.WriteBlobSized(ctx, good.desc, content.NewVerifyReader(bytes.NewReader(good.data), good.desc)); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.HasBlob(ctx, good.desc); !ok {
		t.Fatal("good blob not stored")
	}
}
