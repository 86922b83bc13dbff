package layout

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// removeStale removes the temporary files unchanged since the cut-off and
// nothing else: not a newer temporary file, not another file, not a
// directory.
func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	write := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(tmpPrefix + "old")
	write("index.json")
	if err := os.Mkdir(filepath.Join(dir, tmpPrefix+"dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	cut := time.Now()
	time.Sleep(50 * time.Millisecond)
	write(tmpPrefix + "new")
	if n := removeStale(dir, cut); n != 1 {
		t.Fatalf("removed %d files, want 1", n)
	}
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if want := []string{tmpPrefix + "dir", tmpPrefix + "new", "index.json"}; !slices.Equal(left, want) {
		t.Fatalf("left %q, want %q", left, want)
	}
}

// The first blob a Store writes removes what writes that died left behind,
// in the temporary directory and beside index.json; later writes do not
// sweep again.
func TestWriteSweepsStaleTemporaryFiles(t *testing.T) {
	defer func(d time.Duration) { staleAfter = d }(staleAfter)
	staleAfter = 0
	s := newStore(t)
	if err := os.MkdirAll(s.tmpDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	dead := []string{filepath.Join(s.tmpDir(), tmpPrefix+"abc"), filepath.Join(s.dir, tmpPrefix+"index.json-123")}
	for _, p := range dead {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	b := newBlob("application/octet-stream", []byte("first"))
	if err := s.WriteBlob(ctx, b.desc, bytes.NewReader(b.data)); err != nil {
		t.Fatal(err)
	}
	for _, p := range dead {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after the first write: %v", p, err)
		}
	}
	later := filepath.Join(s.tmpDir(), tmpPrefix+"later")
	if err := os.WriteFile(later, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	b2 := newBlob("application/octet-stream", []byte("second"))
	if err := s.WriteBlob(ctx, b2.desc, bytes.NewReader(b2.data)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(later); err != nil {
		t.Fatalf("a second write of the same Store swept again: %v", err)
	}
}
