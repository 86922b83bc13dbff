package pluginapi

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stevedore-oci/stevedore/core"
	transportv1 "github.com/stevedore-oci/stevedore/pluginapi/proto/v1"
)

func newPlane(t *testing.T) *DataPlane {
	t.Helper()
	dp, err := NewDataPlane()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dp.Close() })
	return dp
}

// rejected reports whether the host closed a connection without using it.
func rejected(t *testing.T, c net.Conn) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.Read(make([]byte, 1))
	return errors.Is(err, io.EOF)
}

func TestDataPlaneSocketIsPrivate(t *testing.T) {
	dp := newPlane(t)
	fi, err := os.Stat(filepath.Dir(dp.Path()))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory mode %v, want 0700", fi.Mode().Perm())
	}
	if len(dp.Path()) > 100 {
		t.Fatalf("socket path %q is too long for a unix socket", dp.Path())
	}
	if err := dp.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(dp.Path())); !os.IsNotExist(err) {
		t.Fatalf("socket directory left after Close: %v", err)
	}
	if _, err := dp.issue(); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("issue after Close: err = %v", err)
	}
}

func TestDataPlaneTokens(t *testing.T) {
	dp := newPlane(t)
	ctx := context.Background()

	// Unknown token: closed.
	bogus := make([]byte, tokenLen)
	_, _ = rand.Read(bogus)
	c, err := dialDataPlane(ctx, &transportv1.DataPlane{SocketPath: dp.Path(), Token: bogus})
	if err != nil {
		t.Fatal(err)
	}
	if !rejected(t, c) {
		t.Fatal("connection with an unknown token was not closed")
	}
	c.Close()

	// Issued token: admitted once, then rejected.
	tk, err := dp.issue()
	if err != nil {
		t.Fatal(err)
	}
	c1, err := dialDataPlane(ctx, dp.request(tk))
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	conn, _, err := awaitConn(ctx, tk, nil)
	if err != nil {
		t.Fatalf("issued token not admitted: %v", err)
	}
	// The admitted connection is the dialer's: bytes flow.
	go func() { _, _ = c1.Write([]byte("ping")) }()
	got := make([]byte, 4)
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "ping" {
		t.Fatalf("admitted connection read %q, %v", got, err)
	}
	conn.Close()
	c2, err := dialDataPlane(ctx, dp.request(tk))
	if err != nil {
		t.Fatal(err)
	}
	if !rejected(t, c2) {
		t.Fatal("second connection with a used token was not closed")
	}
	c2.Close()

	// Revoked token: rejected.
	tk, _ = dp.issue()
	dp.revoke(tk)
	c3, _ := dialDataPlane(ctx, dp.request(tk))
	if !rejected(t, c3) {
		t.Fatal("connection with a revoked token was not closed")
	}
	c3.Close()
}

func TestDataPlaneTokenExpiry(t *testing.T) {
	dp := newPlane(t)
	dp.TokenTTL = 50 * time.Millisecond
	tk, err := dp.issue()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := awaitConn(context.Background(), tk, nil); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("awaitConn on an expired token: err = %v", err)
	}
	c, err := dialDataPlane(context.Background(), dp.request(tk))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !rejected(t, c) {
		t.Fatal("connection with an expired token was not closed")
	}
}

func TestDataPlaneAwaitCancel(t *testing.T) {
	dp := newPlane(t)
	tk, _ := dp.issue()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, _, err := awaitConn(ctx, tk, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("awaitConn with an ending context: err = %v", err)
	}
	// A failed RPC ends the wait with its error.
	done := make(chan rpcResult, 1)
	done <- rpcResult{err: core.ErrNotFound}
	if _, res, err := awaitConn(context.Background(), tk, done); !errors.Is(err, core.ErrNotFound) || res == nil {
		t.Fatalf("awaitConn after a failed RPC: res=%v err=%v", res, err)
	}
}

// A dialer that never sends its token does not block Close.
func TestDataPlaneCloseWithSilentDialer(t *testing.T) {
	dp := newPlane(t)
	c, err := net.Dial("unix", dp.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- dp.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close blocked on a connection that never sent its token")
	}
}

// Socket directories go under $XDG_RUNTIME_DIR when it is usable, else
// under the temporary directory; either way private.
func TestMkdirSockets(t *testing.T) {
	run := t.TempDir()
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	for _, tc := range []struct{ xdg, under string }{
		{run, run},
		{"", tmp},
		{filepath.Join(run, "missing"), tmp},
		{"relative/dir", tmp},
	} {
		t.Setenv("XDG_RUNTIME_DIR", tc.xdg)
		dir, err := MkdirSockets("stvd-")
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(dir)
		if err != nil || filepath.Dir(dir) != tc.under || fi.Mode().Perm() != 0o700 {
			t.Errorf("XDG_RUNTIME_DIR=%q: %s (%v, %v), want a 0700 directory under %s", tc.xdg, dir, fi.Mode(), err, tc.under)
		}
		os.RemoveAll(dir)
	}
}

// A lazy data plane makes its directory and socket at the first token only;
// closed unused it leaves nothing and refuses tokens.
func TestLazyDataPlane(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("TMPDIR", t.TempDir())
	entries := func() int {
		es, err := os.ReadDir(os.Getenv("TMPDIR"))
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	unused := NewLazyDataPlane()
	if unused.Path() != "" || entries() != 0 {
		t.Fatalf("lazy data plane made %q before any transfer", unused.Path())
	}
	if err := unused.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := unused.issue(); !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("issue after Close: %v", err)
	}

	dp := NewLazyDataPlane()
	tk, err := dp.issue()
	if err != nil || dp.Path() == "" || entries() != 1 {
		t.Fatalf("first token: %v, path %q, %d entries", err, dp.Path(), entries())
	}
	c, err := dialDataPlane(context.Background(), dp.request(tk))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := dp.Close(); err != nil || entries() != 0 {
		t.Fatalf("Close: %v, %d entries left", err, entries())
	}
}
