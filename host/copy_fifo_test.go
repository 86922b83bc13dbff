package host_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/imagegen"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/plugins/oci-layout/ocilayout"
)

// A FIFO in a blob's place in a source layout is refused at once, naming
// the blob, not waited on (opening one blocks until something writes).
func TestCopyRefusesFIFOBlob(t *testing.T) {
	ctx := context.Background()
	src, s, img := sourceLayout(t, imagegen.Spec{Seed: 3, Layers: []imagegen.Layer{{Size: 10 << 10}}})
	p, _ := s.BlobPath(img.Layers[0].Digest)
	if err := syscall.Unlink(p); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := host.New(host.Options{SearchPath: []string{t.TempDir()}, InProcess: []pluginapi.Plugin{ocilayout.New()}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, streamOnly := range []bool{false, true} {
		done := make(chan error, 1)
		go func() {
			_, err := h.Copy(ctx, "oci:"+src+":v1", "oci:"+filepath.Join(t.TempDir(), "dst")+":v1", host.CopyOptions{StreamOnly: streamOnly})
			done <- err
		}()
		select {
		case err = <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("stream-only %v: the copy still waits on the FIFO after 20 s", streamOnly)
		}
		if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), img.Layers[0].Digest.Encoded()) {
			t.Fatalf("stream-only %v: %v, want a refusal naming the blob", streamOnly, err)
		}
	}
}

// sourceLayout writes an image generated from spec as "v1" in a new layout
// and returns the layout's directory, store and image.
func sourceLayout(t *testing.T, spec imagegen.Spec) (string, *layout.Store, *imagegen.Image) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	s, err := layout.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	img, err := imagegen.Write(context.Background(), s, "v1", spec)
	if err != nil {
		t.Fatal(err)
	}
	return dir, s, img
}
