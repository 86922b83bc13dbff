package atomicfile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Flock waits for a conflicting lock until ctx ends, and shared locks
// coexist (core/layout's Writer holds its directory shared).
func TestFlock(t *testing.T) {
	name := filepath.Join(t.TempDir(), "l")
	open := func() *os.File {
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, Perm)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	a, b, c := open(), open(), open()
	ctx := context.Background()
	if err := Flock(ctx, a, unix.LOCK_SH); err != nil {
		t.Fatal(err)
	}
	if err := Flock(ctx, b, unix.LOCK_SH); err != nil {
		t.Fatalf("a second shared lock: %v", err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := Flock(short, c, unix.LOCK_EX); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("exclusive lock while shared ones are held: %v, want the deadline", err)
	}
	unix.Flock(int(a.Fd()), unix.LOCK_UN)
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(20 * time.Millisecond)
		unix.Flock(int(b.Fd()), unix.LOCK_UN)
	}()
	err := Flock(ctx, c, unix.LOCK_EX)
	<-released
	if err != nil {
		t.Fatalf("exclusive lock once released: %v", err)
	}
}
