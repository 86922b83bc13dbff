package layout

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/atomicfile"
)

// stage stages b and writes data into the staged file, as the host does.
func stage(t *testing.T, s *Store, desc ocispec.Descriptor, data []byte) string {
	t.Helper()
	p, err := s.StageBlob(context.Background(), desc)
	if err != nil {
		t.Fatalf("StageBlob: %v", err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func gone(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s still exists (%v)", p, err)
	}
}

func TestStageBlobCommit(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	b := newBlob("application/octet-stream", bytes.Repeat([]byte("staged"), 1000))
	p, err := s.StageBlob(ctx, b.desc)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(p) || fi.Size() != 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("staged %s: abs=%v size=%d mode=%v; want an absolute path to an empty 0600 file", p, filepath.IsAbs(p), fi.Size(), fi.Mode())
	}
	if strings.HasPrefix(p, filepath.Join(s.Dir(), "blobs")) {
		t.Fatalf("staged file %s is under blobs/", p)
	}
	if err := os.WriteFile(p, b.data, 0o600); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.HasBlob(ctx, b.desc); ok {
		t.Fatal("blob visible before CommitStaged")
	}
	if err := s.CommitStaged(ctx, b.desc, p, false); err != nil {
		t.Fatalf("CommitStaged: %v", err)
	}
	gone(t, p)
	final, _ := s.BlobPath(b.desc.Digest)
	got, err := os.ReadFile(final)
	if err != nil || !bytes.Equal(got, b.data) {
		t.Fatalf("committed blob: %v, equal=%v", err, bytes.Equal(got, b.data))
	}
	if fi, _ := os.Stat(final); fi.Mode().Perm() != atomicfile.FileMode() {
		t.Fatalf("committed blob mode %v, want %v", fi.Mode().Perm(), atomicfile.FileMode())
	}
	// Committing a blob that is already present keeps it and drops the
	// staged file.
	p2 := stage(t, s, b.desc, b.data)
	if err := s.CommitStaged(ctx, b.desc, p2, true); err != nil {
		t.Fatalf("CommitStaged of a present blob: %v", err)
	}
	gone(t, p2)
	if left := tmpFiles(t, s.Dir()); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestCommitStagedRefusesBadFiles(t *testing.T) {
	ctx := context.Background()
	b := newBlob("application/octet-stream", bytes.Repeat([]byte("good"), 1000))
	bad := bytes.Repeat([]byte("bad!"), 1000)
	tests := []struct {
		name     string
		data     []byte
		verified bool
		wantErr  error
	}{
		{"short", b.data[:len(b.data)-1], false, core.ErrSizeMismatch},
		{"short, host-verified", b.data[:len(b.data)-1], true, core.ErrSizeMismatch},
		{"long", append(bytes.Clone(b.data), 'x'), true, core.ErrSizeMismatch},
		{"empty", nil, true, core.ErrSizeMismatch},
		{"wrong content", bad, false, core.ErrDigestMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			p := stage(t, s, b.desc, tt.data)
			err := s.CommitStaged(ctx, b.desc, p, tt.verified)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CommitStaged = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), s.Dir()) {
				t.Errorf("error %q does not name the layout", err)
			}
			if ok, _ := s.HasBlob(ctx, b.desc); ok {
				t.Fatal("refused blob is visible")
			}
			gone(t, p)
			if left := tmpFiles(t, s.Dir()); len(left) > 0 {
				t.Fatalf("temporary files left: %v", left)
			}
		})
	}
}

// With verified, only the size is checked: the writer vouches for the
// digest, so the content is not hashed a second time.
func TestCommitStagedVerifiedSkipsHash(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	b := newBlob("application/octet-stream", bytes.Repeat([]byte("good"), 1000))
	p := stage(t, s, b.desc, bytes.Repeat([]byte("bad!"), 1000))
	if err := s.CommitStaged(ctx, b.desc, p, true); err != nil {
		t.Fatalf("CommitStaged(verified): %v", err)
	}
	if ok, _ := s.HasBlob(ctx, b.desc); !ok {
		t.Fatal("blob not visible after a verified commit")
	}
}

func TestCommitStagedRefusesForeignPaths(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	b := newBlob("application/octet-stream", []byte("foreign"))
	outside := filepath.Join(t.TempDir(), stagePrefix+"x")
	if err := os.WriteFile(outside, b.data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(s.tmpDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	unstaged := filepath.Join(s.tmpDir(), tmpPrefix+"other")
	if err := os.WriteFile(unstaged, b.data, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(s.tmpDir(), stagePrefix+"link")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(".", stage(t, s, b.desc, b.data))
	for _, p := range []string{outside, unstaged, "", rel, filepath.Join(s.tmpDir(), "..", stagePrefix+"x")} {
		err := s.CommitStaged(ctx, b.desc, p, true)
		if !errors.Is(err, core.ErrInvalid) {
			t.Errorf("CommitStaged(%q) = %v, want ErrInvalid", p, err)
		}
		if err := s.AbortStaged(p); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("AbortStaged(%q) = %v, want ErrInvalid", p, err)
		}
	}
	for _, p := range []string{outside, unstaged} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("a refused path was touched: %v", err)
		}
	}
	// A symlink with a staged name is refused at commit, not renamed in.
	if err := s.CommitStaged(ctx, b.desc, link, true); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("CommitStaged of a symlink = %v, want ErrInvalid", err)
	}
	if ok, _ := s.HasBlob(ctx, b.desc); ok {
		t.Fatal("a refused path became a blob")
	}
	if _, err := os.Stat(outside); err != nil {
		t.Fatalf("the symlink's target was touched: %v", err)
	}
}

func TestAbortStaged(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	b := newBlob("application/octet-stream", []byte("aborted"))
	p := stage(t, s, b.desc, b.data)
	if err := s.AbortStaged(p); err != nil {
		t.Fatal(err)
	}
	gone(t, p)
	if err := s.AbortStaged(p); err != nil {
		t.Fatalf("second AbortStaged: %v", err)
	}
	if err := s.CommitStaged(ctx, b.desc, p, true); err == nil {
		t.Fatal("CommitStaged after AbortStaged succeeded")
	}
	if ok, _ := s.HasBlob(ctx, b.desc); ok {
		t.Fatal("aborted blob is visible")
	}
}

func TestStageBlobInvalid(t *testing.T) {
	s := newStore(t)
	for _, desc := range []ocispec.Descriptor{
		{Digest: "sha256:../../etc", Size: 1},
		{Digest: newBlob("x", []byte("x")).desc.Digest, Size: -1},
	} {
		if _, err := s.StageBlob(context.Background(), desc); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("StageBlob(%v) = %v, want ErrInvalid", desc, err)
		}
	}
	if left := tmpFiles(t, s.Dir()); len(left) > 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestCommitStagedCancelled(t *testing.T) {
	s := newStore(t)
	b := newBlob("application/octet-stream", []byte("cancelled"))
	p := stage(t, s, b.desc, b.data)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.CommitStaged(ctx, b.desc, p, false); !errors.Is(err, context.Canceled) {
		t.Fatalf("CommitStaged with a cancelled ctx = %v", err)
	}
	gone(t, p)
	if ok, _ := s.HasBlob(context.Background(), b.desc); ok {
		t.Fatal("blob visible after a cancelled commit")
	}
}
