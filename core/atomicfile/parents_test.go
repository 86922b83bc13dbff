package atomicfile

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestMkdirParents(t *testing.T) {
	root := t.TempDir()
	a, b, c := filepath.Join(root, "a"), filepath.Join(root, "a", "b"), filepath.Join(root, "a", "b", "c")
	made, err := MkdirParents(c)
	if err != nil || !slices.Equal(made, []string{a, b, c}) {
		t.Fatalf("MkdirParents = %q, %v; want %q", made, err, []string{a, b, c})
	}
	if again, err := MkdirParents(c); err != nil || len(again) != 0 {
		t.Fatalf("MkdirParents of an existing directory = %q, %v", again, err)
	}
	// Another writer's file in b keeps b and a; c goes.
	if err := os.WriteFile(filepath.Join(b, "other"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	RemoveMadeDirs(made)
	if _, err := os.Stat(c); !os.IsNotExist(err) {
		t.Fatalf("empty %s kept: %v", c, err)
	}
	if _, err := os.Stat(filepath.Join(b, "other")); err != nil {
		t.Fatalf("a directory holding a file was removed: %v", err)
	}
	os.Remove(filepath.Join(b, "other"))
	RemoveMadeDirs(made)
	if _, err := os.Stat(a); !os.IsNotExist(err) {
		t.Fatalf("empty %s kept: %v", a, err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Fatalf("a directory that was there was removed: %v", err)
	}
}
