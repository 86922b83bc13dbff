package host_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
)

// A delete that finds nothing to delete must write nothing: opening an OCI
// layout for writing creates it, so a delete from a misspelt path, or from
// a directory holding no layout, used to leave an empty layout there.
func TestDeleteWritesNothingWhereNothingIs(t *testing.T) {
	h := newSyncHost(t)
	ctx := context.Background()
	plain := t.TempDir()
	if err := os.WriteFile(filepath.Join(plain, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct{ name, dir string }{{"missing layout", missing}, {"plain directory", plain}} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := os.ReadDir(tc.dir)
			err := h.Delete(ctx, "oci:"+tc.dir+":v1", nil)
			if !errors.Is(err, core.ErrNotFound) {
				t.Fatalf("delete: %v, want not found", err)
			}
			after, _ := os.ReadDir(tc.dir)
			if len(after) != len(before) {
				t.Fatalf("delete wrote into %s: %v entries, had %v", tc.dir, len(after), len(before))
			}
			if _, err := os.Stat(missing); !os.IsNotExist(err) {
				t.Fatalf("delete created %s", missing)
			}
		})
	}
}
