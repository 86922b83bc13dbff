package statictree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/layer/layertest"
	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/core/staticfmt"
	"github.com/stevedore-oci/stevedore/internal/peertest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

// putAll writes blobs then the top manifest (children first).
func putAll(t *testing.T, dst pluginapi.Destination, blobs []layertest.Blob, top layertest.Blob, ref string) {
	t.Helper()
	ctx := context.Background()
	for _, b := range blobs {
		if strings.Contains(b.Desc.MediaType, "manifest") {
			if err := dst.PutManifest(ctx, b.Desc, b.Data, ""); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := dst.PutBlob(ctx, b.Desc, bytes.NewReader(b.Data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.PutManifest(ctx, top.Desc, top.Data, ref); err != nil {
		t.Fatal(err)
	}
}

var dockerImage = layertest.NewImage("static-docker", layertest.Options{Docker: true})

func writeTree(t *testing.T, root string) (layertest.Image, layertest.Index) {
	t.Helper()
	img := layertest.NewImage("static", layertest.Options{})
	ix := layertest.NewIndex("static-multi", "amd64", "arm64")
	p := New(nil)
	dst := transporttest.OpenEndpoint(t, p, Transport, root+":team/app", pluginapi.ModeWrite)
	putAll(t, dst.(pluginapi.Destination), img.Blobs(), img.Manifest, "v1")
	transporttest.CommitClose(t, dst)
	dst = transporttest.OpenEndpoint(t, p, Transport, root+":team/app", pluginapi.ModeWrite)
	putAll(t, dst.(pluginapi.Destination), ix.Blobs(), ix.Index, "multi")
	transporttest.CommitClose(t, dst)
	dst = transporttest.OpenEndpoint(t, p, Transport, root+":team/app", pluginapi.ModeWrite)
	putAll(t, dst.(pluginapi.Destination), dockerImage.Blobs(), dockerImage.Manifest, "docker")
	transporttest.CommitClose(t, dst)
	return img, ix
}

func TestTreeLayoutAndReadBack(t *testing.T) {
	root := t.TempDir()
	img, ix := writeTree(t, root)
	ctx := context.Background()
	for _, f := range []string{
		"v2/team/app/manifests/v1",
		"v2/team/app/manifests/" + img.Manifest.Desc.Digest.String(),
		"v2/team/app/manifests/multi",
		"v2/team/app/manifests/" + ix.Images[1].Manifest.Desc.Digest.String(),
		"v2/team/app/blobs/" + img.Layers[0].Desc.Digest.String(),
		"v2/team/app/tags/list",
	} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Fatalf("missing %s", f)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(root, "v2/team/app/tags/list")); string(b) != `{"name":"team/app","tags":["docker","multi","v1"]}` {
		t.Fatalf("tags/list %s", b)
	}
	src := transporttest.OpenEndpoint(t, New(nil), Transport, root+":team/app", pluginapi.ModeRead).(*source)
	d, err := src.Resolve(ctx, "v1")
	if err != nil || d.Digest != img.Manifest.Desc.Digest || d.MediaType != img.Manifest.Desc.MediaType {
		t.Fatalf("v1: %+v %v", d, err)
	}
	if _, err := src.Resolve(ctx, ""); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("default with three tags: %v", err)
	}
	if _, err := src.Resolve(ctx, "nope"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := src.Resolve(ctx, "../../x"); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("traversal: %v", err)
	}
	if got := transporttest.ReadBlob(t, src, img.Layers[1].Desc, 3); !bytes.Equal(got, img.Layers[1].Data[3:]) {
		t.Fatal("blob differs")
	}
	// Round trip through our own transport into a second tree.
	other := t.TempDir()
	dst := transporttest.OpenEndpoint(t, New(nil), Transport, other+":copy", pluginapi.ModeWrite)
	top := transporttest.CopyImage(t, src, "multi", dst.(pluginapi.Destination), "m")
	transporttest.CommitClose(t, dst)
	src2 := transporttest.OpenEndpoint(t, New(nil), Transport, other, pluginapi.ModeRead).(*source)
	if d, err := src2.Resolve(ctx, ""); err != nil || d.Digest != top.Digest || d.Digest != ix.Index.Desc.Digest {
		t.Fatalf("read back %v %v", d, err)
	}
	if tags, _ := src2.ListTags(ctx); strings.Join(tags, ",") != "copy:m" {
		t.Fatalf("tags %v", tags)
	}
}

func TestUncommittedTagInvisible(t *testing.T) {
	root := t.TempDir()
	img := layertest.NewImage("unc", layertest.Options{})
	dst := transporttest.OpenEndpoint(t, New(nil), Transport, root+":x", pluginapi.ModeWrite)
	putAll(t, dst.(pluginapi.Destination), img.Blobs(), img.Manifest, "v1")
	if err := dst.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "v2/x/manifests/v1")); !os.IsNotExist(err) {
		t.Fatalf("tag visible without commit: %v", err)
	}
	bad := img.Layers[0]
	dst = transporttest.OpenEndpoint(t, New(nil), Transport, root+":y", pluginapi.ModeWrite)
	if err := dst.(pluginapi.Destination).PutBlob(context.Background(), bad.Desc, bytes.NewReader(bad.Data[1:])); !errors.Is(err, core.ErrSizeMismatch) {
		t.Fatalf("short blob: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(root, "v2/y/blobs"))
	if len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestNginxServesTree: Debian's nginx serves a tree we wrote with the
// generated configuration, and skopeo pulls from it with identical digests.
func TestNginxServesTree(t *testing.T) {
	peertest.Need(t, "nginx")
	peertest.Need(t, "skopeo")
	root := t.TempDir()
	img, ix := writeTree(t, root)
	// The longest repository name and tag distribution allows: the
	// generated configuration's map buckets must hold their keys.
	long := strings.Repeat("a", 120) + "/" + strings.Repeat("b", 134)
	dst := transporttest.OpenEndpoint(t, New(nil), Transport, root+":"+long, pluginapi.ModeWrite)
	putAll(t, dst.(pluginapi.Destination), img.Blobs(), img.Manifest, strings.Repeat("t", 128))
	transporttest.CommitClose(t, dst)
	addr := freePort(t)
	conf, err := staticfmt.NginxConfig(root, addr)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	cf := filepath.Join(work, "nginx.conf")
	os.WriteFile(cf, []byte(conf), 0o644)
	global := fmt.Sprintf("daemon off; user root; pid %s/nginx.pid; error_log %s/error.log;", work, work)
	if out, err := exec.Command("nginx", "-t", "-p", work, "-c", cf, "-g", global).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s\n%s", err, out, conf)
	}
	cmd := exec.Command("nginx", "-p", work, "-c", cf, "-g", global)
	checkServedTree(t, addr, img, ix, runServer(t, cmd))
}

// checkServedTree checks the headers pull clients need and pulls with skopeo
// from a web server serving the tree writeTree made, on addr.
func checkServedTree(t *testing.T, addr string, img layertest.Image, ix layertest.Index, serverLog func() string) {
	t.Helper()
	var err error
	base := "http://" + addr
	var resp *http.Response
	for i := 0; i < 100; i++ {
		if resp, err = http.Get(base + "/v2/"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("server did not start: %v\n%s", err, serverLog())
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Docker-Distribution-Api-Version") != "registry/2.0" {
		t.Fatalf("/v2/: %d %v", resp.StatusCode, resp.Header)
	}

	head := func(path string) http.Header {
		req, _ := http.NewRequest(http.MethodHead, base+path, nil)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 200 {
			t.Fatalf("HEAD %s: %d", path, r.StatusCode)
		}
		if r.Header.Values("Content-Type") == nil || len(r.Header.Values("Content-Type")) != 1 {
			t.Fatalf("HEAD %s: Content-Type %v", path, r.Header.Values("Content-Type"))
		}
		return r.Header
	}
	for _, c := range []struct {
		path, ct string
		dg       digest.Digest
	}{
		{"/v2/team/app/manifests/v1", img.Manifest.Desc.MediaType, img.Manifest.Desc.Digest},
		{"/v2/team/app/manifests/" + img.Manifest.Desc.Digest.String(), img.Manifest.Desc.MediaType, img.Manifest.Desc.Digest},
		{"/v2/team/app/manifests/multi", ocispec.MediaTypeImageIndex, ix.Index.Desc.Digest},
		{"/v2/team/app/blobs/" + img.Layers[0].Desc.Digest.String(), "application/octet-stream", img.Layers[0].Desc.Digest},
	} {
		h := head(c.path)
		if h.Get("Content-Type") != c.ct || h.Get("Docker-Content-Digest") != c.dg.String() || h.Get("Docker-Distribution-Api-Version") != "registry/2.0" {
			t.Fatalf("%s: headers %v", c.path, h)
		}
	}
	if h := head("/v2/team/app/tags/list"); h.Get("Content-Type") != "application/json" {
		t.Fatalf("tags/list: %v", h)
	}
	if r, err := http.Get(base + "/.stevedore/manifests.json"); err != nil || r.StatusCode != 404 {
		t.Fatalf("sidecar served: %v %v", r, err)
	}

	tmp := t.TempDir()
	out := filepath.Join(tmp, "single")
	peertest.Skopeo(t, "copy", "-q", "--src-tls-verify=false", "docker://"+addr+"/team/app:v1", "oci:"+out+":x")
	if got := ociDigest(t, out, "x"); got != img.Manifest.Desc.Digest {
		t.Fatalf("single: pulled %s, want %s", got, img.Manifest.Desc.Digest)
	}
	out = filepath.Join(tmp, "all")
	peertest.Skopeo(t, "copy", "-q", "--all", "--src-tls-verify=false", "docker://"+addr+"/team/app:multi", "oci:"+out+":x")
	if got := ociDigest(t, out, "x"); got != ix.Index.Desc.Digest {
		t.Fatalf("all: pulled %s, want %s", got, ix.Index.Desc.Digest)
	}
	// Docker schema 2 is served as such: skopeo sees the very bytes.
	if raw := peertest.Skopeo(t, "inspect", "--raw", "--tls-verify=false", "docker://"+addr+"/team/app:docker"); raw != string(dockerImage.Manifest.Data) {
		t.Fatalf("docker image served as %s", raw)
	}
	out = filepath.Join(tmp, "docker")
	peertest.Skopeo(t, "copy", "-q", "--src-tls-verify=false", "docker://"+addr+"/team/app:docker", "dir:"+out)
	if b, _ := os.ReadFile(filepath.Join(out, "manifest.json")); digest.FromBytes(b) != dockerImage.Manifest.Desc.Digest {
		t.Fatal("docker image pulled with another digest")
	}
	if tags := peertest.Skopeo(t, "list-tags", "--tls-verify=false", "docker://"+addr+"/team/app"); !strings.Contains(tags, `"multi"`) || !strings.Contains(tags, `"v1"`) {
		t.Fatalf("list-tags: %s", tags)
	}
}

func ociDigest(t *testing.T, dir, tag string) digest.Digest {
	t.Helper()
	s, err := layout.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Resolve(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest
}

func TestConfigNeedsTree(t *testing.T) {
	if _, err := staticfmt.NginxConfig(t.TempDir(), ""); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("empty dir: %v", err)
	}
}

// TestCaddyServesTree: Debian's Caddy serves a tree we wrote with the
// configuration `stevedore static-config --caddy` prints, and skopeo pulls
// from it with identical digests.
func TestCaddyServesTree(t *testing.T) {
	peertest.Need(t, "caddy")
	peertest.Need(t, "skopeo")
	root := t.TempDir()
	img, ix := writeTree(t, root)
	addr := freePort(t)
	conf, err := staticfmt.CaddyConfig(root, addr)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	cf := filepath.Join(work, "Caddyfile")
	os.WriteFile(cf, []byte(conf), 0o644)
	env := append(os.Environ(), "HOME="+work, "XDG_DATA_HOME="+work, "XDG_CONFIG_HOME="+work)
	validate := exec.Command("caddy", "validate", "--config", cf, "--adapter", "caddyfile")
	validate.Env = env
	if out, err := validate.CombinedOutput(); err != nil {
		t.Fatalf("caddy validate: %v\n%s\n%s", err, out, conf)
	}
	cmd := exec.Command("caddy", "run", "--config", cf, "--adapter", "caddyfile")
	cmd.Env = env
	checkServedTree(t, addr, img, ix, runServer(t, cmd))
}

// runServer starts a web server and stops it with SIGTERM when the test
// ends (SIGKILL would orphan nginx's workers); it returns the server's
// stderr so far.
func runServer(t *testing.T, cmd *exec.Cmd) func() string {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return func() string { return stderr.String() }
}

// Repository names a static tree cannot hold are refused up front, naming
// the reason: over distribution's 255 characters, or with a component the
// tree uses for a repository's own files.
func TestTreeRefusesNamesItCannotHold(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{"app/manifests", "r/tags/list", "x/blobs", strings.Repeat("a", 128) + "/" + strings.Repeat("b", 128)} {
		_, err := New(nil).Open(context.Background(), pluginapi.OpenRequest{Transport: Transport, Location: root + ":" + name, Mode: pluginapi.ModeWrite})
		if !errors.Is(err, core.ErrInvalid) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want an invalid-name error", name, err)
		}
	}
}

// A commit that fails before its end points no tag: the tags' files are
// written last (a file server serves a tag from its file alone).
func TestFailedCommitPointsNoTag(t *testing.T) {
	root := t.TempDir()
	img := layertest.NewImage("failed", layertest.Options{})
	// Something in the way of the repository's tag list.
	if err := os.MkdirAll(filepath.Join(root, "v2/z/tags/list/in-the-way"), 0o755); err != nil {
		t.Fatal(err)
	}
	dst := transporttest.OpenEndpoint(t, New(nil), Transport, root+":z", pluginapi.ModeWrite)
	putAll(t, dst.(pluginapi.Destination), img.Blobs(), img.Manifest, "v1")
	if err := dst.(pluginapi.Committer).Commit(context.Background()); err == nil {
		t.Fatal("commit over a directory where the tag list goes succeeded")
	}
	dst.Close(context.Background())
	if _, err := os.Stat(filepath.Join(root, "v2/z/manifests/v1")); !os.IsNotExist(err) {
		t.Fatalf("a failed commit left tag v1 pointed: %v", err)
	}
}

// A tree or repository holding no image says so: the error listed an empty
// choice ("holds 0 images, name one of: ").
func TestResolveDefaultOfEmptyTree(t *testing.T) {
	root := t.TempDir()
	img := layertest.NewImage("empty", layertest.Options{})
	dst := transporttest.OpenEndpoint(t, New(nil), Transport, root+":x", pluginapi.ModeWrite)
	putAll(t, dst.(pluginapi.Destination), img.Blobs(), img.Manifest, "v1")
	if err := dst.Close(context.Background()); err != nil { // no commit: no tag
		t.Fatal(err)
	}
	for loc, want := range map[string]string{root: "holds no image", root + ":x": "repository x has no tags"} {
		src := transporttest.OpenEndpoint(t, New(nil), Transport, loc, pluginapi.ModeRead)
		_, err := src.(pluginapi.Source).Resolve(context.Background(), "")
		if !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "name one of") {
			t.Errorf("%s: %v, want not found saying %q", loc, err, want)
		}
	}
}

// The listen address goes into the configuration as it is: "bogus" gave a
// file the server refused, and a ';' would add directives.
func TestConfigRefusesBadListen(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root)
	for _, gen := range []func(string, string) (string, error){staticfmt.NginxConfig, staticfmt.CaddyConfig} {
		for _, listen := range []string{"bogus", "127.0.0.1:99999", "127.0.0.1:8080; include /etc/passwd", "127.0.0.1:80\nx"} {
			if _, err := gen(root, listen); !errors.Is(err, core.ErrInvalid) {
				t.Errorf("listen %q: %v, want invalid", listen, err)
			}
		}
		if _, err := gen(root, "[::1]:8080"); err != nil {
			t.Errorf("listen [::1]:8080: %v", err)
		}
	}
}
