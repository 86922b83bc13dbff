package layout

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
)

func TestFind(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	for _, d := range []string{"a", "a/b", "c/d", "team-x"} {
		if _, err := Create(filepath.Join(root, d)); err != nil {
			t.Fatal(err)
		}
	}
	// Not layouts, or not searched: a plain directory, a dot directory
	// holding a layout, and a layout's blobs directory.
	for _, d := range []string{"e/f", ".hidden"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Create(filepath.Join(root, ".hidden", "x")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "a", "blobs", "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Find(ctx, root+"/")
	want := []string{root + "/a", root + "/a/b", root + "/c/d", root + "/team-x"}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Find(root/) = %v, %v; want %v", got, err, want)
	}
	if got, err := Find(ctx, root+"/a"); err != nil || !slices.Equal(got, []string{root + "/a", root + "/a/b"}) {
		t.Fatalf("Find(root/a) = %v, %v", got, err)
	}
	if _, err := Find(ctx, root+"/nope"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("Find of a missing directory: %v", err)
	}
	if _, err := Find(ctx, filepath.Join(root, "a", "oci-layout")); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("Find of a file: %v", err)
	}
}
