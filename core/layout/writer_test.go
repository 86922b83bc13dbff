package layout

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A writer that created a layout and leaves it holding nothing removes it
// on Discard: the files, the directory and the parents it made. A failed
// copy used to leave an empty layout behind.
func TestWriterDiscardsWhatItCreated(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dir := filepath.Join(root, "a", "b", "layout")
	s, w, err := NewWriter(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if !w.Created() {
		t.Fatal("a new layout is not reported created")
	}
	if removed, err := w.Discard(s); err != nil || !removed {
		t.Fatalf("Discard: %v, %v", removed, err)
	}
	if _, err := os.Stat(filepath.Join(root, "a")); !os.IsNotExist(err) {
		t.Fatalf("the directories made are still there: %v", err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Fatalf("a directory that was there before was removed: %v", err)
	}

	// A new writer creates it again.
	s, w, err = NewWriter(ctx, dir)
	if err != nil || !w.Created() {
		t.Fatalf("NewWriter after Discard: %v", err)
	}
	w.Release()
	if _, err := Open(dir); err != nil {
		t.Fatalf("a released layout is not kept: %v", err)
	}
}

// A directory that was there keeps its owner's files; only the layout's
// own files go.
func TestWriterDiscardKeepsTheDirectorysFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, w, err := NewWriter(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if removed, err := w.Discard(s); err != nil || !removed {
		t.Fatalf("Discard: %v, %v", removed, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 || entries[0].Name() != "README" {
		t.Fatalf("directory holds %v (%v), want README alone", entries, err)
	}
}

// Nothing is removed of a layout that was there, that holds an entry, that
// another writer holds, that holds a blob (its own: a copy run again would
// fetch it again; or another's) or a file someone else wrote, or a
// temporary file.
func TestWriterDiscardKeeps(t *testing.T) {
	ctx := context.Background()
	im := makeImage(t, 2, 1, 1<<10)
	newLayout := func(t *testing.T) (string, *Store, *Writer) {
		dir := filepath.Join(t.TempDir(), "layout")
		s, w, err := NewWriter(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		return dir, s, w
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string, s *Store)
	}{
		{"tagged", func(t *testing.T, dir string, s *Store) {
			for _, b := range append(im.blobs(), im.manifest) {
				if err := s.WriteBlob(ctx, b.desc, bytes.NewReader(b.data)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Tag(ctx, im.manifest.desc, "v1"); err != nil {
				t.Fatal(err)
			}
		}},
		{"another writer", func(t *testing.T, dir string, s *Store) {
			_, other, err := NewWriter(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			if other.Created() {
				t.Fatal("the second writer says it created the layout")
			}
			t.Cleanup(other.Release)
		}},
		{"blob it wrote", func(t *testing.T, dir string, s *Store) {
			if err := s.WriteBlob(ctx, im.config.desc, bytes.NewReader(im.config.data)); err != nil {
				t.Fatal(err)
			}
		}},
		{"blob of another process", func(t *testing.T, dir string, s *Store) {
			other, err := Open(dir) // a Store of its own, as in another process
			if err != nil {
				t.Fatal(err)
			}
			if err := other.WriteBlob(ctx, im.config.desc, bytes.NewReader(im.config.data)); err != nil {
				t.Fatal(err)
			}
		}},
		{"file of someone else", func(t *testing.T, dir string, s *Store) {
			if err := os.WriteFile(filepath.Join(dir, "notes"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"temporary file", func(t *testing.T, dir string, s *Store) {
			if _, err := s.StageBlob(ctx, im.config.desc); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, s, w := newLayout(t)
			tc.setup(t, dir, s)
			before := listTree(t, dir)
			if removed, err := w.Discard(s); err != nil || removed {
				t.Fatalf("Discard: %v, %v; want the layout kept", removed, err)
			}
			if after := listTree(t, dir); !slices.Equal(before, after) {
				t.Fatalf("Discard changed the layout: %v, was %v", after, before)
			}
		})
	}

	// A layout that was there is not the writer's to remove.
	dir, s, w := newLayout(t)
	w.Release()
	s, w, err := NewWriter(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if w.Created() {
		t.Fatal("an existing layout is reported created")
	}
	if removed, err := w.Discard(s); err != nil || removed {
		t.Fatalf("Discard of a layout that was there: %v, %v", removed, err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
}

func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A writer arriving while the layout is being discarded gets a layout
// whole: the one that was there, or a new one it created.
func TestWriterArrivingDuringDiscard(t *testing.T) {
	ctx := context.Background()
	for i := range 50 {
		dir := filepath.Join(t.TempDir(), "p", "layout")
		s1, w1, err := NewWriter(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			w   *Writer
			err error
		}
		got := make(chan result, 1)
		go func() {
			_, w2, err := NewWriter(ctx, dir)
			got <- result{w2, err}
		}()
		removed, err := w1.Discard(s1)
		if err != nil {
			t.Fatal(err)
		}
		r := <-got
		if r.err != nil {
			t.Fatalf("round %d: NewWriter during Discard (removed %v): %v", i, removed, r.err)
		}
		if _, err := Open(dir); err != nil {
			t.Fatalf("round %d: the second writer holds no layout (removed %v, created %v): %v", i, removed, r.w.Created(), err)
		}
		r.w.Release()
	}
}
