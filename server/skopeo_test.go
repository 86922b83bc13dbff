package server_test

import (
	"bytes"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/server"
)

func needSkopeo(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("skopeo")
	if err != nil {
		if inCI() {
			t.Fatal("skopeo is not installed (CI=true: not skipping)")
		}
		t.Skip("skopeo is not installed (apt-get install skopeo); set CI=true to make this a failure")
	}
	return p
}

func skopeo(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	// Test images are random, so skopeo's blob-info cache cannot turn
	// these pushes into mounts.
	all := append([]string{"--insecure-policy"}, args...)
	cmd := exec.Command(bin, all...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func indexJSON(t *testing.T, dir string) ocispec.Index {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

func TestSkopeoRoundTrip(t *testing.T) {
	bin := needSkopeo(t)
	root := t.TempDir()
	ts, _ := testServer(t, server.Options{Root: root, AnonymousWrite: true})
	u, _ := url.Parse(ts.URL)
	reg := u.Host

	t.Run("image", func(t *testing.T) {
		src := t.TempDir()
		im := randomImage(t, "amd64", 3)
		writeLayout(t, src, "v1", nil, im)
		skopeo(t, bin, "copy", "--dest-tls-verify=false", "oci:"+src+":v1", "docker://"+reg+"/skopeo/img:v1")
		dst := t.TempDir()
		skopeo(t, bin, "copy", "--src-tls-verify=false", "docker://"+reg+"/skopeo/img:v1", "oci:"+dst+":v1")
		got := indexJSON(t, dst)
		if len(got.Manifests) != 1 || got.Manifests[0].Digest != im.manifest.desc.Digest {
			t.Fatalf("pulled manifest %v, want %s", got.Manifests, im.manifest.desc.Digest)
		}
		for _, b := range append([]blob{im.config}, im.layers...) {
			data, err := os.ReadFile(filepath.Join(dst, "blobs/sha256", b.desc.Digest.Encoded()))
			if err != nil || !bytes.Equal(data, b.data) {
				t.Fatalf("pulled blob %s differs: %v", b.desc.Digest, err)
			}
		}
		// The server's store is itself a layout skopeo reads.
		out := skopeo(t, bin, "inspect", "--raw", "oci:"+filepath.Join(root, "skopeo/img")+":v1")
		if !bytes.Equal(out, im.manifest.data) {
			t.Fatalf("skopeo inspect oci:ROOT/skopeo/img:v1 gave %s", out)
		}
	})

	t.Run("index --all", func(t *testing.T) {
		src := t.TempDir()
		a, b := randomImage(t, "amd64", 2), randomImage(t, "arm64", 2)
		idx := indexOf(a, b)
		writeLayout(t, src, "multi", &idx, a, b)
		skopeo(t, bin, "copy", "--all", "--dest-tls-verify=false", "oci:"+src+":multi", "docker://"+reg+"/skopeo/multi:multi")
		raw := skopeo(t, bin, "inspect", "--raw", "--tls-verify=false", "docker://"+reg+"/skopeo/multi:multi")
		if !bytes.Equal(raw, idx.data) {
			t.Fatalf("index changed in transit:\n%s\nwant\n%s", raw, idx.data)
		}
		dst := t.TempDir()
		skopeo(t, bin, "copy", "--all", "--src-tls-verify=false", "docker://"+reg+"/skopeo/multi:multi", "oci:"+dst+":multi")
		got := indexJSON(t, dst)
		if len(got.Manifests) != 1 || got.Manifests[0].Digest != idx.desc.Digest {
			t.Fatalf("pulled index %v, want %s", got.Manifests, idx.desc.Digest)
		}
		for _, im := range []image{a, b} {
			for _, bl := range append([]blob{im.manifest, im.config}, im.layers...) {
				data, err := os.ReadFile(filepath.Join(dst, "blobs/sha256", bl.desc.Digest.Encoded()))
				if err != nil || !bytes.Equal(data, bl.data) {
					t.Fatalf("pulled blob %s differs: %v", bl.desc.Digest, err)
				}
			}
		}
		out := skopeo(t, bin, "inspect", "--raw", "oci:"+filepath.Join(root, "skopeo/multi")+":multi")
		if !bytes.Equal(out, idx.data) {
			t.Fatalf("skopeo inspect of the store's layout gave %s", out)
		}
		// Tags list through the registry.
		tags := skopeo(t, bin, "list-tags", "--tls-verify=false", "docker://"+reg+"/skopeo/multi")
		if !bytes.Contains(tags, []byte(`"multi"`)) {
			t.Fatalf("list-tags: %s", tags)
		}
	})
}

// skopeo logs in to a server whose policy lets anonymous pull somewhere:
// it sends the credentials it has only after /v2/ challenges it.
func TestSkopeoWithPolicyAllowingAnonymous(t *testing.T) {
	bin := needSkopeo(t)
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pol, []byte("rules:\n  - users: [alice]\n    repositories: [\"*\"]\n    actions: [pull, push]\n  - users: [anonymous]\n    repositories: [\"public/*\"]\n    actions: [pull]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts, _ := testServer(t, server.Options{HtpasswdFile: htpasswd(t, "alice"), PolicyFile: pol})
	u, _ := url.Parse(ts.URL)
	src := t.TempDir()
	im := randomImage(t, "amd64", 1)
	writeLayout(t, src, "v1", nil, im)
	skopeo(t, bin, "copy", "--dest-tls-verify=false", "--dest-creds", "alice:alice-pw", "oci:"+src+":v1", "docker://"+u.Host+"/public/app:v1")
	// Anonymous pulls what the policy lets it.
	out := skopeo(t, bin, "inspect", "--raw", "--tls-verify=false", "--no-creds", "docker://"+u.Host+"/public/app:v1")
	if !bytes.Equal(out, im.manifest.data) {
		t.Fatalf("anonymous pull: %s", out)
	}
}
