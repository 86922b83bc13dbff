package archive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/layer"
	"github.com/stevedore-oci/stevedore/core/layer/layertest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

// TestDockerArchiveReadsBzip2: docker load and skopeo read a bzip2-compressed
// archive (docker save | bzip2); it was refused as "bzip2 compressed
// layers: unsupported". An xz one, which we cannot decode, is refused
// saying that the archive is xz-compressed, not that its layers are.
func TestDockerArchiveReadsBzip2(t *testing.T) {
	bz, err := exec.LookPath("bzip2")
	if err != nil {
		t.Skip("no bzip2 to compress with")
	}
	tmp := t.TempDir()
	tmpdir := t.TempDir()
	t.Setenv("TMPDIR", tmpdir)
	ctx := context.Background()
	a := layertest.NewImage("bzip2-a", layertest.Options{})
	b := layertest.NewImage("bzip2-b", layertest.Options{})
	cmd := exec.Command(bz, "-c")
	cmd.Stdin = bytes.NewReader(legacyArchive(t, a, b))
	compressed, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(tmp, "legacy.tar.bz2")
	if err := os.WriteFile(path, compressed, 0o644); err != nil {
		t.Fatal(err)
	}
	src := transporttest.OpenEndpoint(t, New(nil), DockerArchive, path, pluginapi.ModeRead).(*dockerSource)
	for ref, img := range map[string]layertest.Image{"first:1": a, "second:2": b} {
		if _, m := getManifest(t, src, ref); configDigest(t, m) != img.Config.Desc.Digest {
			t.Fatalf("%s: wrong image", ref)
		}
	}
	emptyDir(t, tmpdir)
	src.Close(ctx)

	xz := filepath.Join(tmp, "legacy.tar.xz")
	if err := os.WriteFile(xz, []byte{0xfd, '7', 'z', 'X', 'Z', 0, 0, 4, 0xe6, 0xd6, 0xb4, 0x46}, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = New(nil).Open(ctx, pluginapi.OpenRequest{Transport: DockerArchive, Location: xz, Mode: pluginapi.ModeRead})
	if !errors.Is(err, core.ErrUnsupported) || !strings.Contains(err.Error(), "xz-compressed archive") || strings.Contains(err.Error(), "layers") {
		t.Fatalf("xz archive: %v", err)
	}
}

// compressWith compresses b as c.
func compressWith(t *testing.T, b []byte, c layer.Compression) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch c {
	case layer.Gzip:
		w = gzip.NewWriter(&buf)
	case layer.Zstd:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	default:
		t.Fatalf("no writer for %s", c)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Adding an image to a gzip- or zstd-compressed archive keeps it
// compressed the same way: it was rewritten as a plain tar under its name
// (x.tar.gz no longer gzip). A bzip2 one, which we read but cannot write,
// is refused and left as it was.
func TestAddingToCompressedArchiveKeepsItsCompression(t *testing.T) {
	ctx := context.Background()
	a := layertest.NewImage("keep-a", layertest.Options{})
	b := layertest.NewImage("keep-b", layertest.Options{})
	write := func(transport, path string, img layertest.Image, ref string) error {
		e, err := New(nil).Open(ctx, pluginapi.OpenRequest{Transport: transport, Location: path, Mode: pluginapi.ModeWrite})
		if err != nil {
			return err
		}
		putImage(t, e.(pluginapi.Destination), img, ref)
		transporttest.CommitClose(t, e)
		return nil
	}
	refs := map[string][2]string{OCIArchive: {"a", "b"}, DockerArchive: {"x/a:1", "x/b:1"}}
	for _, transport := range []string{OCIArchive, DockerArchive} {
		for _, c := range []layer.Compression{layer.Gzip, layer.Zstd} {
			tmp := t.TempDir()
			plain := filepath.Join(tmp, "plain.tar")
			if err := write(transport, plain, a, refs[transport][0]); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(plain)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(tmp, "images.tar."+c.String())
			if err := os.WriteFile(path, compressWith(t, raw, c), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := write(transport, path, b, refs[transport][1]); err != nil {
				t.Fatalf("%s %s: %v", transport, c, err)
			}
			head := make([]byte, layer.MagicLen)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := io.ReadFull(f, head)
			f.Close()
			if got := layer.Detect(head[:n]); got != c {
				t.Fatalf("%s written to a %s archive: now %s", transport, c, got)
			}
			e := transporttest.OpenEndpoint(t, New(nil), transport, path, pluginapi.ModeRead)
			src := e.(pluginapi.Source)
			for i, img := range []layertest.Image{a, b} {
				if _, m := getManifest(t, src, refs[transport][i]); configDigest(t, m) != img.Config.Desc.Digest {
					t.Fatalf("%s %s: %s is the wrong image", transport, c, refs[transport][i])
				}
			}
			e.Close(ctx)
		}
	}

	bz, err := exec.LookPath("bzip2")
	if err != nil {
		t.Skip("no bzip2 to compress with")
	}
	tmp := t.TempDir()
	plain := filepath.Join(tmp, "plain.tar")
	if err := write(OCIArchive, plain, a, "a"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bz, "-c", plain)
	compressed, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(tmp, "images.tar.bz2")
	if err := os.WriteFile(path, compressed, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = New(nil).Open(ctx, pluginapi.OpenRequest{Transport: OCIArchive, Location: path, Mode: pluginapi.ModeWrite})
	if !errors.Is(err, core.ErrUnsupported) || !strings.Contains(err.Error(), "bzip2-compressed: it can be read, not added to") {
		t.Fatalf("writing to a bzip2 archive: %v", err)
	}
	if now, _ := os.ReadFile(path); !bytes.Equal(now, compressed) {
		t.Fatal("the bzip2 archive changed")
	}
}
