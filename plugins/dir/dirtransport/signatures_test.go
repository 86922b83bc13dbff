package dirtransport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/layer/layertest"
	"github.com/stevedore-oci/stevedore/internal/peertest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

// sig is a signature skopeo accepts as simple signing (0xa3 starts an
// OpenPGP compressed packet); skopeo does not verify signatures it copies.
func sig(s string) []byte { return append([]byte{0xa3}, s...) }

func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func sameFiles(t *testing.T, what, want, got string) {
	t.Helper()
	fw, fg := peertest.Files(t, want, ""), peertest.Files(t, got, "")
	if keys(fw) != keys(fg) {
		t.Fatalf("%s: files differ:\nwant %s\ngot  %s", what, keys(fw), keys(fg))
	}
	for n := range fw {
		if fw[n] != fg[n] {
			t.Fatalf("%s: file %s differs", what, n)
		}
	}
}

// TestSkopeoSignatures: skopeo's signature files (signature-N for the
// image, <hex>.signature-N for the children of an index) are read by our
// source, written by our destination with the same names and bytes, and
// read by skopeo from what we wrote; an image picked from an index gets its
// child's signatures as signature-N, as skopeo does.
func TestSkopeoSignatures(t *testing.T) {
	peertest.Need(t, "skopeo")
	ctx := context.Background()
	tmp := t.TempDir()
	ix := layertest.NewIndex("sig", "amd64", "arm64")
	fx := filepath.Join(tmp, "fx")
	if err := layertest.WriteIndex(fx, "t", ix); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(tmp, "a")
	peertest.Skopeo(t, "copy", "-q", "--all", "oci:"+fx+":t", "dir:"+a)
	top := ix.Index.Desc.Digest
	amd, arm := ix.Images[0].Manifest.Desc.Digest, ix.Images[1].Manifest.Desc.Digest
	sigs := map[digest.Digest][][]byte{top: {sig("index one"), sig("index two")}, arm: {}}
	for i := range 11 { // past 9: numbers, not names, order them
		sigs[amd] = append(sigs[amd], sig(fmt.Sprintf("amd64 %d", i+1)))
	}
	files := map[string][]byte{}
	for d, ss := range sigs {
		for i, s := range ss {
			files[signatureName(d, d == top, i+1)] = s
		}
	}
	writeFiles(t, a, files)
	// skopeo itself keeps them: the fixture is what skopeo writes.
	peertest.Skopeo(t, "copy", "-q", "--all", "dir:"+a, "dir:"+filepath.Join(tmp, "s"))
	sameFiles(t, "skopeo copy --all of the fixture", a, filepath.Join(tmp, "s"))

	p := New(nil)
	src := transporttest.OpenEndpoint(t, p, Transport, a, pluginapi.ModeRead).(*source)
	for d, want := range sigs {
		got, err := src.Signatures(ctx, d)
		if err != nil || !slices.EqualFunc(got, want, bytes.Equal) {
			t.Fatalf("Signatures(%s) = %d, %v; want %d in order", d, len(got), err, len(want))
		}
	}

	// Ours, --all: the same files.
	b := filepath.Join(tmp, "b")
	dst := transporttest.OpenEndpoint(t, p, Transport, b, pluginapi.ModeWrite).(*dest)
	transporttest.CopyImage(t, src, "", dst, "")
	for d, ss := range sigs {
		if err := dst.PutSignatures(ctx, d, ss); err != nil {
			t.Fatal(err)
		}
	}
	transporttest.CommitClose(t, dst)
	sameFiles(t, "our copy --all", a, b)
	// skopeo reads ours.
	c := filepath.Join(tmp, "c")
	peertest.Skopeo(t, "copy", "-q", "--all", "dir:"+b, "dir:"+c)
	sameFiles(t, "skopeo copy --all of ours", a, c)

	// One image of the index: its signatures become signature-N.
	sone := filepath.Join(tmp, "sone")
	peertest.Skopeo(t, "copy", "-q", "--override-arch", "amd64", "dir:"+a, "dir:"+sone)
	one := filepath.Join(tmp, "one")
	dst = transporttest.OpenEndpoint(t, p, Transport, one, pluginapi.ModeWrite).(*dest)
	transporttest.CopyImage(t, src, amd.String(), dst, amd.String())
	if err := dst.PutSignatures(ctx, amd, sigs[amd]); err != nil {
		t.Fatal(err)
	}
	transporttest.CommitClose(t, dst)
	sameFiles(t, "one image with its signatures", sone, one)
}

func TestSignatureErrors(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	img := layertest.NewImage("sigerr", layertest.Options{})
	d := filepath.Join(tmp, "d")
	dst := transporttest.OpenEndpoint(t, New(nil), Transport, d, pluginapi.ModeWrite).(*dest)
	for _, b := range img.Blobs() {
		if err := dst.PutBlob(ctx, b.Desc, bytes.NewReader(b.Data)); err != nil {
			t.Fatal(err)
		}
	}
	m := img.Manifest.Desc.Digest
	if err := dst.PutSignatures(ctx, m, [][]byte{sig("early")}); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("PutSignatures before the manifest: %v, want ErrNotFound", err)
	}
	if err := dst.PutManifest(ctx, img.Manifest.Desc, img.Manifest.Data, m.String()); err != nil {
		t.Fatal(err)
	}
	if err := dst.PutSignatures(ctx, m, [][]byte{sig("one"), sig("two")}); err != nil {
		t.Fatal(err)
	}
	transporttest.CommitClose(t, dst)
	if err := dst.PutSignatures(ctx, m, [][]byte{sig("late")}); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("PutSignatures after Commit: %v, want ErrInvalid", err)
	}

	src := transporttest.OpenEndpoint(t, New(nil), Transport, d, pluginapi.ModeRead).(*source)
	// A gap ends the list, as in skopeo.
	writeFiles(t, d, map[string][]byte{"signature-4": sig("after a gap")})
	if got, err := src.Signatures(ctx, m); err != nil || len(got) != 2 {
		t.Fatalf("Signatures with a gap = %d, %v; want 2", len(got), err)
	}
	if _, err := src.Signatures(ctx, "sha256:../../x"); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("Signatures of a bad digest: %v", err)
	}
	for name, c := range map[string]struct {
		files map[string][]byte
		want  error
	}{
		"empty":    {map[string][]byte{"signature-3": {}}, core.ErrInvalid},
		"too big":  {map[string][]byte{"signature-3": make([]byte, pluginapi.MaxSignatureSize+1)}, core.ErrTooLarge},
		"too many": {manySignatures(pluginapi.MaxSignatures + 1), core.ErrTooLarge},
	} {
		writeFiles(t, d, c.files)
		if _, err := src.Signatures(ctx, m); !errors.Is(err, c.want) {
			t.Errorf("Signatures with %s: %v, want %v", name, err, c.want)
		}
		for n := range c.files {
			if n != "signature-1" && n != "signature-2" {
				os.Remove(filepath.Join(d, n))
			}
		}
	}
}

func manySignatures(n int) map[string][]byte {
	files := map[string][]byte{}
	for i := 3; i <= n; i++ {
		files[fmt.Sprintf("signature-%d", i)] = sig("x")
	}
	return files
}
