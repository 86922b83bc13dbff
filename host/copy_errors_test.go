package host_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/imagegen"
)

// A blob a layout refuses, linked from another layout, is named once: the
// error said "put blob D from P: oci layout L: blob D from P: digest
// mismatch ...".
func TestLinkedBlobErrorNamesBlobOnce(t *testing.T) {
	src, _, img := sourceLayout(t, imagegen.Spec{Seed: 11, Layers: []imagegen.Layer{{Size: 64 << 10}}})
	layer := filepath.Join(src, "blobs", "sha256", img.Layers[0].Digest.Encoded())
	b, err := os.ReadFile(layer)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	os.Remove(layer) // it may be hard-linked
	if err := os.WriteFile(layer, b, 0o644); err != nil {
		t.Fatal(err)
	}
	h := newSyncHost(t)
	_, err = h.Copy(context.Background(), "oci:"+src+":v1", "oci:"+filepath.Join(t.TempDir(), "dst")+":v1", host.CopyOptions{})
	if err == nil {
		t.Fatal("a corrupt blob was copied")
	}
	if n := strings.Count(err.Error(), img.Layers[0].Digest.String()+" from "+layer); n != 1 {
		t.Fatalf("the blob and its file are named %d times: %v", n, err)
	}
}
