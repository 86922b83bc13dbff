package storage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
)

// Existing (what gc opens with) creates nothing: gc with a misspelt --root,
// or pointed at an OCI layout or any directory, made an empty store there
// (even with --dry-run) and reported "0 repositories".
func TestOpenExistingCreatesNothing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := Open(missing, Options{Existing: true}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing root: %v, want not exist", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("missing root was created")
	}
	plain := t.TempDir()
	if _, err := Open(plain, Options{Existing: true}); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("plain directory: %v, want not found", err)
	}
	if ents, _ := os.ReadDir(plain); len(ents) != 0 {
		t.Errorf("plain directory got %d entries", len(ents))
	}
	made := t.TempDir()
	if _, err := Open(made, Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(made, Options{Existing: true}); err != nil {
		t.Errorf("a store serve made: %v", err)
	}
}
