package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needTool skips when a peer tool is missing, except in CI where the peer
// must be there and the test must run.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI (make test-deps installs it)", name)
		}
		t.Skipf("%s not installed; run make test-deps", name)
	}
	return p
}

func skopeo(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("skopeo", append([]string{"--insecure-policy"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
	return string(out)
}

func skopeoDigest(t *testing.T, image string) string {
	t.Helper()
	var info struct{ Digest string }
	if err := json.Unmarshal([]byte(skopeo(t, "inspect", image)), &info); err != nil {
		t.Fatal(err)
	}
	return info.Digest
}

// A layout we wrote is read and copied by skopeo with the same digest, and
// one skopeo wrote is copied by us with the same digest: single image.
func TestSkopeoInteropSingleImage(t *testing.T) {
	needTool(t, "skopeo")
	needPlugin(t, "oci")
	dir := t.TempDir()
	img := genImage(t, filepath.Join(dir, "gen"), "v1", 2, 128<<10)
	want := img.Manifest.Digest.String()

	mustRun(t, "copy", "oci:"+dir+"/gen:v1", "oci:"+dir+"/ours:v1")
	if got := skopeoDigest(t, "oci:"+dir+"/ours:v1"); got != want {
		t.Fatalf("skopeo inspect of our layout: %s, want %s", got, want)
	}
	skopeo(t, "copy", "oci:"+dir+"/ours:v1", "oci:"+dir+"/skopeo:v1")
	if got := skopeoDigest(t, "oci:"+dir+"/skopeo:v1"); got != want {
		t.Fatalf("skopeo copy of our layout changed the digest: %s", got)
	}
	out := mustRun(t, "copy", "oci:"+dir+"/skopeo:v1", "oci:"+dir+"/back:v1")
	if strings.TrimSpace(out) != want || rawSHA(t, "oci:"+dir+"/back:v1") != want {
		t.Fatalf("our copy of skopeo's layout: %s, want %s", out, want)
	}
}

// The same with a two-platform index, --all on both sides.
func TestSkopeoInteropIndex(t *testing.T) {
	needTool(t, "skopeo")
	needPlugin(t, "oci")
	dir := t.TempDir()
	idx := genIndex(t, filepath.Join(dir, "gen"), "multi")
	want := idx.Digest.String()

	mustRun(t, "copy", "--all", "oci:"+dir+"/gen:multi", "oci:"+dir+"/ours:multi")
	raw := skopeo(t, "inspect", "--raw", "oci:"+dir+"/ours:multi")
	if got := sha(raw); got != want {
		t.Fatalf("skopeo inspect --raw of our index: %s, want %s", got, want)
	}
	skopeo(t, "copy", "--all", "oci:"+dir+"/ours:multi", "oci:"+dir+"/skopeo:multi")
	if got := sha(skopeo(t, "inspect", "--raw", "oci:"+dir+"/skopeo:multi")); got != want {
		t.Fatalf("skopeo copy --all of our index changed the digest: %s", got)
	}
	mustRun(t, "copy", "--all", "oci:"+dir+"/skopeo:multi", "oci:"+dir+"/back:multi")
	if got := rawSHA(t, "oci:"+dir+"/back:multi"); got != want {
		t.Fatalf("our copy of skopeo's index: %s, want %s", got, want)
	}
	// Without --all both tools pick one platform the same way.
	ours := strings.TrimSpace(mustRun(t, "copy", "--platform", "linux/arm64", "oci:"+dir+"/skopeo:multi", "oci:"+dir+"/one:arm"))
	skopeo(t, "copy", "--override-arch", "arm64", "oci:"+dir+"/skopeo:multi", "oci:"+dir+"/sone:arm")
	if theirs := sha(skopeo(t, "inspect", "--raw", "oci:"+dir+"/sone:arm")); theirs != ours {
		t.Fatalf("platform pick differs: ours %s, skopeo %s", ours, theirs)
	}
}

func sha(s string) string {
	return shaBytes([]byte(s))
}
