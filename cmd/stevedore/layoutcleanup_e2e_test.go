package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A copy that fails into oci:DIR before it wrote a blob, where DIR held no
// layout, leaves nothing behind: it used to leave an empty layout
// (oci-layout, index.json, blobs/), as skopeo does. A directory that was
// there stays, with its files; a layout that was there keeps its images.
// (Blobs written before a failure are kept, with their layout, so that the
// copy run again does not fetch them again: core/layout's tests.)
func TestFailedCopyRemovesTheLayoutItCreated(t *testing.T) {
	needPlugin(t, "oci")
	dir := t.TempDir()
	img := genImage(t, filepath.Join(dir, "src"), "v1", 1, 64<<10)
	// Every blob corrupt: the copy fails before any is written.
	for _, d := range []string{img.Layers[0].Digest.Encoded(), img.Config.Digest.Encoded()} {
		p := filepath.Join(dir, "src", "blobs", "sha256", d)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		os.Remove(p)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := "oci:" + filepath.Join(dir, "src") + ":v1"

	// A new directory, and the missing parents it is in.
	for _, mode := range []string{"--stream-only", "--stream-only=false"} {
		_, errOut, err := runCLI(t, "copy", mode, src, "oci:"+filepath.Join(dir, "new", "sub", "dst")+":v1")
		if err == nil || !strings.Contains(errOut, "digest mismatch") {
			t.Fatalf("copy %s of a corrupt layer: %v %s", mode, err, errOut)
		}
		if _, err := os.Stat(filepath.Join(dir, "new")); !os.IsNotExist(err) {
			t.Fatalf("copy %s: the failed copy left %s: %v", mode, filepath.Join(dir, "new"), err)
		}
	}

	// A directory that was there, holding a file.
	pre := filepath.Join(dir, "pre")
	if err := os.MkdirAll(pre, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pre, "README"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCLI(t, "copy", src, "oci:"+pre+":v1"); err == nil {
		t.Fatal("copy of a corrupt layer succeeded")
	}
	if entries, err := os.ReadDir(pre); err != nil || len(entries) != 1 || entries[0].Name() != "README" {
		t.Fatalf("directory that was there holds %v (%v), want README alone", entries, err)
	}

	// A layout that was there.
	old := filepath.Join(dir, "old")
	other := genImage(t, old, "keep", 1, 1<<10)
	if _, _, err := runCLI(t, "copy", src, "oci:"+old+":v1"); err == nil {
		t.Fatal("copy of a corrupt layer succeeded")
	}
	if out := mustRun(t, "inspect", "-f", "{{.Digest}}", "oci:"+old+":keep"); strings.TrimSpace(out) != other.Manifest.Digest.String() {
		t.Fatalf("the layout that was there lost its image: %q", out)
	}
}
