package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// copy --platform of an image that is no index checks its platform: it
// used to copy linux/amd64 to someone asking for linux/arm64. skopeo's
// --override-arch picks from an index only and copies the image as it is;
// sync fails the image, as it fails an index holding none of the
// platforms, unless --override-arch.
func TestPlatformOfSingleImageCLI(t *testing.T) {
	needPlugin(t, "oci")
	dir := t.TempDir()
	img := genImage(t, filepath.Join(dir, "src"), "v1", 1, 1<<10) // linux/amd64
	src := "oci:" + filepath.Join(dir, "src") + ":v1"
	bin := installDir(t, builtin(t, "oci"))

	r := runFrom(t, bin, nil, "copy", "--platform", "linux/arm64", src, "oci:"+filepath.Join(dir, "a")+":v1")
	wantOneLineError(t, r, "image "+img.Manifest.Digest.String()+" is for linux/amd64, not linux/arm64", "use --platform linux/amd64 or none")

	if out := mustFrom(t, bin, nil, "copy", "-q", "--platform", "linux/amd64", src, "oci:"+filepath.Join(dir, "b")+":v1"); strings.TrimSpace(out) != img.Manifest.Digest.String() {
		t.Fatalf("copy --platform linux/amd64: %q", out)
	}
	if out := mustFrom(t, bin, nil, "copy", "-q", "--override-arch", "arm64", src, "oci:"+filepath.Join(dir, "c")+":v1"); strings.TrimSpace(out) != img.Manifest.Digest.String() {
		t.Fatalf("copy --override-arch arm64: %q", out)
	}

	r = runFrom(t, bin, nil, "sync", "--platform", "linux/arm64", src, "oci:"+filepath.Join(dir, "m1"))
	if r.err == nil || !strings.Contains(r.stderr, "is for linux/amd64, not linux/arm64") {
		t.Fatalf("sync --platform linux/arm64: %v\n%s", r.err, r.stderr)
	}
	mustFrom(t, bin, nil, "sync", "--platform", "linux/arm64,linux/amd64", src, "oci:"+filepath.Join(dir, "m2"))
	mustFrom(t, bin, nil, "sync", "--override-arch", "arm64", src, "oci:"+filepath.Join(dir, "m3"))
}
