package archive

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
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
