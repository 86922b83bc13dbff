package main

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/internal/peertest"
)

func wantSigFiles(t *testing.T, what, dir string, want map[string]string) {
	t.Helper()
	if got := peertest.SignatureFiles(t, dir); !maps.Equal(got, want) {
		t.Fatalf("%s: signature files %v, want %v (same names and bytes)", what, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}

// amd64Child is the hex digest of the linux/amd64 image of the dir: index.
func amd64Child(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	for _, m := range idx.Manifests {
		if m.Platform != nil && m.Platform.Architecture == "amd64" {
			return m.Digest.Encoded()
		}
	}
	t.Fatalf("%s: no linux/amd64 image", dir)
	return ""
}

// signedDir makes a dir: image of a two-platform index (copied by us from
// an OCI layout) with skopeo-style signature files: two for the index, one
// for the first image.
func signedDir(t *testing.T, tmp string) (string, map[string]string) {
	t.Helper()
	genIndex(t, filepath.Join(tmp, "gen"), "multi")
	a := filepath.Join(tmp, "a")
	mustRun(t, "copy", "--all", "oci:"+tmp+"/gen:multi", "dir:"+a)
	child := amd64Child(t, a)
	sigs := map[string]string{
		"signature-1":          "\xa3index signature 1\x00\xff",
		"signature-2":          "\xa3index signature 2",
		child + ".signature-1": "\xa3child signature 1",
	}
	for n, s := range sigs {
		if err := os.WriteFile(filepath.Join(a, n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return a, sigs
}

// dir:A -> dir:B keeps every signature file byte for byte, silently.
func TestCopyDirKeepsSignatures(t *testing.T) {
	needPlugin(t, "dir")
	needPlugin(t, "oci")
	tmp := t.TempDir()
	a, sigs := signedDir(t, tmp)
	_, stderr, err := runCLI(t, "copy", "--all", "dir:"+a, "dir:"+tmp+"/b")
	if err != nil {
		t.Fatalf("copy: %v\n%s", err, stderr)
	}
	if strings.Contains(stderr, "signature") {
		t.Fatalf("a copy that kept the signatures warned: %s", stderr)
	}
	wantSigFiles(t, "dir -> dir --all", tmp+"/b", sigs)
}

// dir -> oci: the image arrives, with one warning naming the number of
// signatures dropped; --remove-signatures silences it.
func TestCopyDirToOCIWarnsOnce(t *testing.T) {
	needPlugin(t, "dir")
	needPlugin(t, "oci")
	tmp := t.TempDir()
	a, _ := signedDir(t, tmp)
	out, stderr, err := runCLI(t, "copy", "--all", "dir:"+a, "oci:"+tmp+"/o:v1")
	if err != nil {
		t.Fatalf("copy: %v\n%s", err, stderr)
	}
	var warn []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "signature") {
			warn = append(warn, l)
		}
	}
	if len(warn) != 1 || !strings.Contains(warn[0], "dropped 3 signature(s)") || !strings.Contains(warn[0], "--remove-signatures") || !strings.HasPrefix(warn[0], "[WARN]") {
		t.Fatalf("want one warning about 3 dropped signatures, without a timestamp, stderr:\n%s", stderr)
	}
	// -q: errors only.
	if _, stderr, err := runCLI(t, "copy", "-q", "--all", "dir:"+a, "oci:"+tmp+"/o:q"); err != nil || stderr != "" {
		t.Fatalf("copy -q: %v, stderr %q", err, stderr)
	}
	if got := rawSHA(t, "oci:"+tmp+"/o:v1"); got != strings.TrimSpace(out) {
		t.Fatalf("copied %s, printed %s", got, out)
	}
	_, stderr, err = runCLI(t, "copy", "--all", "--remove-signatures", "dir:"+a, "oci:"+tmp+"/o:v2")
	if err != nil || strings.Contains(stderr, "signature") {
		t.Fatalf("--remove-signatures: %v\n%s", err, stderr)
	}
	_, stderr, err = runCLI(t, "copy", "--all", "--remove-signatures", "dir:"+a, "dir:"+tmp+"/r")
	if err != nil {
		t.Fatalf("--remove-signatures to dir: %v\n%s", err, stderr)
	}
	wantSigFiles(t, "dir -> dir --remove-signatures", tmp+"/r", map[string]string{})
}

// skopeo reads the signatures we wrote, and we keep those skopeo wrote.
func TestSkopeoInteropSignatures(t *testing.T) {
	peertest.Need(t, "skopeo")
	needPlugin(t, "dir")
	needPlugin(t, "oci")
	tmp := t.TempDir()
	a, sigs := signedDir(t, tmp)
	mustRun(t, "copy", "--all", "dir:"+a, "dir:"+tmp+"/ours")
	peertest.Skopeo(t, "copy", "-q", "--all", "dir:"+tmp+"/ours", "dir:"+tmp+"/skopeo")
	wantSigFiles(t, "skopeo copy --all of our copy", tmp+"/skopeo", sigs)
	mustRun(t, "copy", "--all", "dir:"+tmp+"/skopeo", "dir:"+tmp+"/back")
	wantSigFiles(t, "our copy --all of skopeo's", tmp+"/back", sigs)

	// One platform, both tools: the image's signatures become signature-N.
	child := amd64Child(t, a)
	mustRun(t, "copy", "--platform", "linux/amd64", "dir:"+a, "dir:"+tmp+"/one")
	peertest.Skopeo(t, "copy", "-q", "--override-os", "linux", "--override-arch", "amd64", "dir:"+a, "dir:"+tmp+"/sone")
	want := map[string]string{"signature-1": sigs[child+".signature-1"]}
	wantSigFiles(t, "our copy of one image", tmp+"/one", want)
	wantSigFiles(t, "skopeo's copy of one image", tmp+"/sone", want)
	peertest.Skopeo(t, "copy", "-q", "dir:"+tmp+"/one", "dir:"+tmp+"/sone2")
	wantSigFiles(t, "skopeo copy of our one image", tmp+"/sone2", want)
}

// Converting a signed manifest for a destination that stores signatures
// would leave them signing bytes it does not hold: refused, naming the manifest and the way out;
// --remove-signatures converts. Nothing is tagged by the refused copy.
func TestCopyRefusesToConvertSigned(t *testing.T) {
	needPlugin(t, "dir")
	tmp := t.TempDir()
	a, _ := signedDir(t, tmp)
	_, stderr, err := runCLI(t, "copy", "--all", "--format", "v2s2", "dir:"+a, "dir:"+tmp+"/o")
	if err == nil || !strings.Contains(stderr, "signature(s)") || !strings.Contains(stderr, "--remove-signatures") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("converting a signed index: %v, stderr %q", err, stderr)
	}
	if _, _, err := runCLI(t, "inspect", "--raw", "dir:"+tmp+"/o"); err == nil {
		t.Fatal("the refused copy tagged the destination")
	}
	out := mustRun(t, "copy", "--all", "--format", "v2s2", "--remove-signatures", "dir:"+a, "dir:"+tmp+"/o")
	var m struct{ MediaType string }
	if err := json.Unmarshal([]byte(mustRun(t, "inspect", "--raw", "dir:"+tmp+"/o")), &m); err != nil || m.MediaType != "application/vnd.docker.distribution.manifest.list.v2+json" {
		t.Fatalf("converted copy %s: %q %v", out, m.MediaType, err)
	}
}
