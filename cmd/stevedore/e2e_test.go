package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/internal/imagegen"
	"github.com/stevedore-oci/stevedore/internal/proctest"
)

// binDir holds the real binaries built once for the end-to-end tests.
var binDir string

// builtinPlugins maps binary name to package directory.
var builtinPlugins = map[string]string{
	"oci": "oci-layout", "docker": "docker", "dir": "dir", "archive": "archive", "static": "static",
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stevedore-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := func() int {
		defer os.RemoveAll(dir)
		if err := buildBinaries(dir); err != nil {
			fmt.Fprintln(os.Stderr, "build binaries:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func buildBinaries(dir string) error {
	root, err := filepath.Abs("../..")
	if err != nil {
		return err
	}
	builds := map[string]string{"stevedore": "./cmd/stevedore"}
	only := os.Getenv("STEVEDORE_E2E_PLUGINS") // developers: build a subset, e.g. "oci"
	for name, pkg := range builtinPlugins {
		if only != "" && !strings.Contains(","+only+",", ","+name+",") {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "plugins", pkg, "main.go")); err == nil {
			builds["stevedore-transport-"+name] = "./plugins/" + pkg
		}
	}
	for out, pkg := range builds {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, out), pkg)
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return nil
}

// run runs the real CLI with plugins only from binDir.
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "stevedore"), args...)
	cmd.Env = append(os.Environ(), "STEVEDORE_PLUGIN_PATH="+binDir, "XDG_DATA_HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := runCLI(t, args...)
	if err != nil {
		t.Fatalf("stevedore %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

func needPlugin(t *testing.T, name string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(binDir, "stevedore-transport-"+name)); err != nil {
		t.Fatalf("plugin %s was not built", name)
	}
}

func genImage(t *testing.T, dir, tag string, layers int, size int64) *imagegen.Image {
	t.Helper()
	s, err := layout.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	spec := imagegen.Spec{Seed: uint64(len(dir)), Labels: map[string]string{"demo": "yes"}, Env: []string{"A=1"}}
	for i := 0; i < layers; i++ {
		spec.Layers = append(spec.Layers, imagegen.Layer{Size: size, Compressible: i%2 == 0})
	}
	img, err := imagegen.Write(context.Background(), s, tag, spec)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func genIndex(t *testing.T, dir, tag string) ocispec.Descriptor {
	t.Helper()
	s, err := layout.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	spec := imagegen.Spec{Seed: 42, Layers: []imagegen.Layer{{Size: 64 << 10}, {Size: 32 << 10, Compressible: true}}}
	desc, _, err := imagegen.WriteIndex(context.Background(), s, tag, spec, []ocispec.Platform{
		{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}, {OS: "linux", Architecture: "s390x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return desc
}

func rawSHA(t *testing.T, image string) string {
	t.Helper()
	return shaBytes([]byte(mustRun(t, "inspect", "--raw", image)))
}

func TestCopySingleImage(t *testing.T) {
	needPlugin(t, "oci")
	dir := t.TempDir()
	img := genImage(t, filepath.Join(dir, "src"), "v1", 3, 256<<10)
	digestFile := filepath.Join(dir, "digest")
	out := mustRun(t, "copy", "--digestfile", digestFile, "oci:"+dir+"/src:v1", "oci:"+dir+"/dst:v1")
	if strings.TrimSpace(out) != img.Manifest.Digest.String() {
		t.Fatalf("copy printed %q, want %s", out, img.Manifest.Digest)
	}
	if b, _ := os.ReadFile(digestFile); string(b) != img.Manifest.Digest.String() {
		t.Fatalf("digestfile holds %q", b)
	}
	if got := rawSHA(t, "oci:"+dir+"/dst:v1"); got != img.Manifest.Digest.String() {
		t.Fatalf("destination manifest %s, want %s", got, img.Manifest.Digest)
	}
	for _, l := range img.Layers {
		if _, err := os.Stat(filepath.Join(dir, "dst", "blobs", "sha256", l.Digest.Encoded())); err != nil {
			t.Fatalf("layer %s missing in destination: %v", l.Digest, err)
		}
	}
	// A second copy finds everything in place.
	_, errOut, err := runCLI(t, "copy", "--progress=json", "oci:"+dir+"/src:v1", "oci:"+dir+"/dst:v2")
	if err != nil {
		t.Fatal(err, errOut)
	}
	if !strings.Contains(errOut, `"blobsCopied":0`) || !strings.Contains(errOut, `"blobsSkipped":4`) {
		t.Fatalf("second copy moved blobs again: %s", errOut)
	}
	// Once more to the same tag: the destination holds the image already.
	_, errOut, err = runCLI(t, "copy", "--progress=json", "oci:"+dir+"/src:v1", "oci:"+dir+"/dst:v2")
	if err != nil || !strings.Contains(errOut, `"upToDate":true`) {
		t.Fatalf("copy to a tag holding the image: %v %s", err, errOut)
	}
	_, errOut, err = runCLI(t, "copy", "--force", "--progress=json", "oci:"+dir+"/src:v1", "oci:"+dir+"/dst:v2")
	if err != nil || !strings.Contains(errOut, `"upToDate":false`) || !strings.Contains(errOut, `"blobsSkipped":4`) {
		t.Fatalf("--force: %v %s", err, errOut)
	}
}

func TestCopyIndex(t *testing.T) {
	needPlugin(t, "oci")
	dir := t.TempDir()
	idx := genIndex(t, filepath.Join(dir, "src"), "multi")
	src := "oci:" + dir + "/src:multi"

	mustRun(t, "copy", "--all", src, "oci:"+dir+"/all:multi")
	if got := rawSHA(t, "oci:"+dir+"/all:multi"); got != idx.Digest.String() {
		t.Fatalf("--all changed the index digest: %s != %s", got, idx.Digest)
	}
	// skopeo's spelling of --all; index-only is refused, naming why.
	if out := strings.TrimSpace(mustRun(t, "copy", "--multi-arch", "all", src, "oci:"+dir+"/ma:multi")); out != idx.Digest.String() {
		t.Fatalf("--multi-arch all copied %s, want %s", out, idx.Digest)
	}
	if _, errOut, err := runCLI(t, "copy", "--multi-arch", "index-only", src, "oci:"+dir+"/io:multi"); err == nil || !strings.Contains(errOut, "index-only") {
		t.Fatalf("--multi-arch index-only: %v %s", err, errOut)
	}

	out := mustRun(t, "copy", "--platform", "linux/aarch64", src, "oci:"+dir+"/arm:x")
	raw := mustRun(t, "inspect", "--raw", "oci:"+dir+"/arm:x")
	if !strings.Contains(raw, `"config"`) || strings.Contains(raw, `"manifests"`) {
		t.Fatalf("one platform should copy an image manifest, got %s", raw)
	}
	info := inspectJSON(t, "oci:"+dir+"/arm:x")
	if info["Architecture"] != "arm64" || info["Digest"] != strings.TrimSpace(out) {
		t.Fatalf("arm64 copy: %v (copy printed %s)", info, out)
	}

	mustRun(t, "copy", "--platform", "linux/amd64", "--platform", "linux/s390x", src, "oci:"+dir+"/two:x")
	var sub ocispec.Index
	if err := json.Unmarshal([]byte(mustRun(t, "inspect", "--raw", "oci:"+dir+"/two:x")), &sub); err != nil {
		t.Fatal(err)
	}
	if len(sub.Manifests) != 2 || sub.Manifests[0].Platform.Architecture != "amd64" || sub.Manifests[1].Platform.Architecture != "s390x" {
		t.Fatalf("two-platform copy gave %+v", sub.Manifests)
	}

	_, errOut, err := runCLI(t, "copy", "--platform", "windows/arm64", src, "oci:"+dir+"/none:x")
	if err == nil || !strings.Contains(errOut, "no image for windows/arm64") || !strings.Contains(errOut, "linux/s390x") || !strings.Contains(errOut, "--platform naming one of those") {
		t.Fatalf("missing platform: err=%v stderr=%s", err, errOut)
	}
	// One of several platforms missing: the copy names it rather than
	// writing an index without it.
	_, errOut, err = runCLI(t, "copy", "--platform", "linux/amd64", "--platform", "windows/arm64", src, "oci:"+dir+"/part:x")
	if err == nil || !strings.Contains(errOut, "no image for windows/arm64 (it has") || strings.Contains(errOut, "no image for linux/amd64") {
		t.Fatalf("one of two platforms missing: err=%v stderr=%s", err, errOut)
	}
	if _, _, err := runCLI(t, "inspect", "--raw", "oci:"+dir+"/part:x"); err == nil {
		t.Fatal("a copy refused for a missing platform tagged part:x")
	}

	// A docker-archive cannot hold an index: refused before any of its
	// images is written (each used to be written, with its warning, first).
	needPlugin(t, "archive")
	_, errOut, err = runCLI(t, "copy", "--all", src, "docker-archive:"+dir+"/x.tar:img:1")
	if err == nil || !strings.Contains(errOut, "holds single-platform images") || strings.Contains(errOut, "uncompressed") {
		t.Fatalf("--all into a docker-archive: err=%v stderr=%s", err, errOut)
	}
	if _, err := os.Stat(dir + "/x.tar"); !os.IsNotExist(err) {
		t.Fatalf("refused copy left an archive: %v", err)
	}
}

func inspectJSON(t *testing.T, image string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, "inspect", image)), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestInspectListTagsDelete(t *testing.T) {
	needPlugin(t, "oci")
	dir := t.TempDir()
	img := genImage(t, dir, "v1", 2, 4096)
	mustRun(t, "copy", "oci:"+dir+":v1", "oci:"+dir+":v2")
	info := inspectJSON(t, "oci:"+dir+":v1")
	if info["Digest"] != img.Manifest.Digest.String() || info["Os"] != "linux" || len(info["Layers"].([]any)) != 2 {
		t.Fatalf("inspect: %v", info)
	}
	if labels := info["Labels"].(map[string]any); labels["demo"] != "yes" {
		t.Fatalf("labels: %v", labels)
	}
	if ld := info["LayersData"].([]any); ld[0].(map[string]any)["MIMEType"] != ocispec.MediaTypeImageLayerGzip {
		t.Fatalf("LayersData: %v", ld)
	}
	if out := mustRun(t, "inspect", "-f", "{{.Digest}} {{join .RepoTags \",\"}} {{upper .Os}}", "oci:"+dir+":v1"); out != img.Manifest.Digest.String()+" v1,v2 LINUX\n" {
		t.Fatalf("--format: %q", out)
	}
	if _, errOut, err := runCLI(t, "inspect", "--raw", "-f", "{{.Digest}}", "oci:"+dir+":v1"); err == nil || !strings.Contains(errOut, "--format and --raw") {
		t.Fatalf("--format with --raw: %v %s", err, errOut)
	}
	if _, errOut, err := runCLI(t, "inspect", "-f", "{{.Nope}}", "oci:"+dir+":v1"); err == nil || !strings.Contains(errOut, "--format") {
		t.Fatalf("--format naming no field: %v %s", err, errOut)
	}
	cfg := mustRun(t, "inspect", "--config", "oci:"+dir+":v1")
	if !strings.Contains(cfg, `"diff_ids"`) {
		t.Fatalf("--config: %s", cfg)
	}
	var tags struct{ Tags []string }
	json.Unmarshal([]byte(mustRun(t, "list-tags", "oci:"+dir)), &tags)
	if strings.Join(tags.Tags, ",") != "v1,v2" {
		t.Fatalf("tags %v", tags.Tags)
	}

	mustRun(t, "delete", "oci:"+dir+":v1")
	json.Unmarshal([]byte(mustRun(t, "list-tags", "oci:"+dir)), &tags)
	if strings.Join(tags.Tags, ",") != "v2" {
		t.Fatalf("after delete: tags %v", tags.Tags)
	}
	if _, errOut, err := runCLI(t, "inspect", "oci:"+dir+":v1"); err == nil || !strings.Contains(errOut, "v1") {
		t.Fatalf("inspect of a deleted tag: %v %s", err, errOut)
	}
}

func TestCorruptBlobFailsCopy(t *testing.T) {
	needPlugin(t, "oci")
	dir := t.TempDir()
	img := genImage(t, filepath.Join(dir, "src"), "v1", 2, 128<<10)
	layer := filepath.Join(dir, "src", "blobs", "sha256", img.Layers[1].Digest.Encoded())
	b, err := os.ReadFile(layer)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	os.Remove(layer) // the store may have hard-linked it
	if err := os.WriteFile(layer, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"--stream-only", "--stream-only=false"} {
		_, errOut, err := runCLI(t, "copy", mode, "oci:"+dir+"/src:v1", "oci:"+dir+"/dst:v1")
		checkCorruptCopy(t, dir, img, errOut, err)
	}
}

func checkCorruptCopy(t *testing.T, dir string, img *imagegen.Image, errOut string, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("copy of a corrupted layer succeeded")
	}
	if !strings.Contains(errOut, "digest mismatch") || !strings.Contains(errOut, img.Layers[1].Digest.String()) {
		t.Fatalf("error does not name the mismatch: %s", errOut)
	}
	if strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("error is not one line: %q", errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "dst", "blobs", "sha256", img.Layers[1].Digest.Encoded())); err == nil {
		t.Fatal("corrupted blob became visible in the destination")
	}
	if idx, err := os.ReadFile(filepath.Join(dir, "dst", "index.json")); err == nil && strings.Contains(string(idx), `"org.opencontainers.image.ref.name":"v1"`) {
		t.Fatalf("destination was tagged: %s", idx)
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"copy", "nope", "oci:" + dir}, `"nope"`},
		{[]string{"copy", "ftp://x", "oci:" + dir}, `"ftp"`},
		{[]string{"copy", "--platform", "linux", "oci:" + dir, "oci:" + dir + "2"}, `"linux"`},
		{[]string{"inspect", "oci:" + dir + "/missing:v1"}, "missing"},
		{[]string{"manifest-digest", dir + "/nofile.json"}, "nofile.json"},
	} {
		_, errOut, err := runCLI(t, tt.args...)
		if err == nil || !strings.Contains(errOut, tt.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("stevedore %v: err=%v stderr=%q (want one line naming %s)", tt.args, err, errOut, tt.want)
		}
	}
}

func TestManifestDigest(t *testing.T) {
	dir := t.TempDir()
	img := genImage(t, dir, "v1", 1, 10)
	path := filepath.Join(dir, "blobs", "sha256", img.Manifest.Digest.Encoded())
	if out := strings.TrimSpace(mustRun(t, "manifest-digest", path)); out != img.Manifest.Digest.String() {
		t.Fatalf("manifest-digest = %s, want %s", out, img.Manifest.Digest)
	}
}

func TestPluginsListing(t *testing.T) {
	needPlugin(t, "oci")
	var rows []struct {
		Name       string
		Transports []string
		SHA256     string
		Path       string
		Error      string
	}
	if err := json.Unmarshal([]byte(mustRun(t, "plugins", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rows {
		if r.Error != "" {
			t.Errorf("plugin %s: %s", r.Name, r.Error)
		}
		if r.Name == "oci" && len(r.Transports) == 1 && r.Transports[0] == "oci" && len(r.SHA256) == 64 {
			found = true
		}
	}
	if !found {
		t.Fatalf("oci plugin not listed properly: %+v", rows)
	}
	assertNoPluginProcesses(t)
}

// pluginProcesses lists live processes started from binDir.
func pluginProcesses() []string {
	var out []string
	for _, p := range proctest.List() {
		if !p.Zombie() && strings.HasPrefix(p.Exe, binDir) && strings.Contains(p.Exe, "stevedore-transport-") {
			out = append(out, strconv.Itoa(p.Pid)+":"+p.Exe)
		}
	}
	return out
}

func assertNoPluginProcesses(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := pluginProcesses()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin processes left behind: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// socketTempDir is a $TMPDIR for a CLI the test interrupts or kills, where
// its socket directories go (with XDG_RUNTIME_DIR empty), removed with the
// test whatever the CLI leaves there. It must be short: for a long one the
// CLI would fall back to /tmp (handshake.MkdirSockets).
func socketTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) > 64 {
		d, err := os.MkdirTemp("/tmp", "stvd-test-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		dir = d
	}
	return dir
}

// blockingLayout makes a layout whose oci-layout file is a FIFO, so the oci
// plugin blocks opening it: the host is then waiting on a live plugin.
func blockingLayout(t *testing.T) string {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "oci-layout"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func startBlocked(t *testing.T) *exec.Cmd { return startBlockedWith(t, nil) }

// startBlockedWith is startBlocked writing its stderr to stderr.
func startBlockedWith(t *testing.T, stderr *os.File) *exec.Cmd {
	t.Helper()
	dir := blockingLayout(t)
	cmd := exec.Command(filepath.Join(binDir, "stevedore"), "list-tags", "oci:"+dir)
	// Its socket directories in a $TMPDIR of the test's own: a test may
	// kill it outright, which leaves them (SIGKILL cannot be cleaned up
	// after), and the others check it left nothing.
	cmd.Env = append(os.Environ(), "STEVEDORE_PLUGIN_PATH="+binDir, "TMPDIR="+socketTempDir(t), "XDG_RUNTIME_DIR=")
	if stderr != nil {
		cmd.Stderr = stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(pluginProcesses()) == 0 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("plugin never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let the Open call reach the plugin
	return cmd
}

// assertNoSocketDirs checks that a command startBlocked started left
// nothing in its $TMPDIR.
func assertNoSocketDirs(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	var tmp string
	for _, kv := range cmd.Env {
		if v, ok := strings.CutPrefix(kv, "TMPDIR="); ok {
			tmp = v // the last one counts
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("left in $TMPDIR: %v", left)
	}
}

func TestNoOrphansWhenHostIsKilled(t *testing.T) {
	needPlugin(t, "oci")
	cmd := startBlocked(t)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	assertNoPluginProcesses(t)
}

// SIGINT and SIGTERM stop the command and its plugins; the exit status is
// 128 + the signal's number, as a shell reports a process it killed.
func TestInterruptStopsPlugins(t *testing.T) {
	needPlugin(t, "oci")
	for _, c := range []struct {
		sig  os.Signal
		code int
	}{{os.Interrupt, 130}, {syscall.SIGTERM, 143}} {
		cmd := startBlocked(t)
		start := time.Now()
		cmd.Process.Signal(c.sig)
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != c.code {
			t.Fatalf("stevedore stopped by %v: %v, want exit status %d", c.sig, err, c.code)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("took %s to stop after %v", d, c.sig)
		}
		assertNoPluginProcesses(t)
		assertNoSocketDirs(t, cmd)
	}
}

// A host whose stderr nobody reads (a full pipe blocks each write) still
// stops on one SIGTERM, within its grace, with its plugins: it used to wait
// forever to say "interrupted", and a second signal first said so too.
func TestSignalStopsHostWithBlockedStderr(t *testing.T) {
	needPlugin(t, "oci")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	// Fill the pipe: every write to it blocks from now on. (Fd once: each
	// call puts the file back in blocking mode.)
	fd := int(w.Fd())
	if err := syscall.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte("x"), 4096)
	for {
		if _, err := syscall.Write(fd, junk); err != nil {
			break
		}
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		t.Fatal(err)
	}
	cmd := startBlockedWith(t, w)
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 143 {
			t.Fatalf("stopped by SIGTERM: %v, want exit status 143", err)
		}
		t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	case <-time.After(25 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("a host with a blocked stderr did not stop within 25 s of SIGTERM")
	}
	assertNoPluginProcesses(t)
	assertNoSocketDirs(t, cmd)
}

func shaBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// --progress=json's last line says when manifests were converted; a copy
// as they are says nothing of it; a bad --format is refused up front.
func TestCopyFormatReported(t *testing.T) {
	needPlugin(t, "oci")
	dir := t.TempDir()
	genImage(t, filepath.Join(dir, "gen"), "v1", 1, 16<<10)
	for _, c := range []struct {
		args []string
		want any
	}{
		{[]string{"--format", "v2s2"}, "v2s2"},
		{nil, nil},
	} {
		args := append(append([]string{"copy", "--progress=json"}, c.args...), "oci:"+dir+"/gen:v1", "oci:"+dir+"/out:"+strconv.Itoa(len(c.args)))
		_, stderr, err := runCLI(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		var done map[string]any
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &done); err != nil || done["kind"] != "copy-done" || done["convertedTo"] != c.want {
			t.Fatalf("%v: last line %s (%v), want convertedTo %v", c.args, lines[len(lines)-1], err, c.want)
		}
	}
	// A failure is the last JSON line, and every line is JSON.
	_, stderr, err := runCLI(t, "copy", "--progress=json", "oci:"+dir+"/gen:nope", "oci:"+dir+"/out:nope")
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	var failed map[string]any
	for _, l := range lines {
		if jerr := json.Unmarshal([]byte(l), &failed); jerr != nil {
			t.Fatalf("--progress=json wrote a line that is not JSON: %q (%v)", l, jerr)
		}
	}
	if err == nil || failed["kind"] != "copy-failed" || !strings.Contains(fmt.Sprint(failed["error"]), `"nope"`) {
		t.Fatalf("failed copy with --progress=json: %v, last line %v", err, failed)
	}
	if _, stderr, err := runCLI(t, "copy", "--format", "docker", "oci:"+dir+"/gen:v1", "oci:"+dir+"/bad:v1"); err == nil || !strings.Contains(stderr, "--format") || !strings.Contains(stderr, "oci or v2s2") {
		t.Fatalf("--format docker: %v %s", err, stderr)
	}
	// A docker-archive holds Docker schema 2 only: --format oci is refused,
	// and nothing is written.
	tar := filepath.Join(dir, "d.tar")
	if _, stderr, err := runCLI(t, "copy", "--format", "oci", "oci:"+dir+"/gen:v1", "docker-archive:"+tar); err == nil || !strings.Contains(stderr, "Docker schema 2 images only") {
		t.Fatalf("--format oci to docker-archive: %v %s", err, stderr)
	}
	if _, err := os.Stat(tar); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the refused copy left %s: %v", tar, err)
	}
}

// Writing an archive or a dir: over one already there keeps its mode (a
// private archive stays private), and new files follow the umask, as
// skopeo's do.
func TestWrittenFilesKeepModes(t *testing.T) {
	needPlugin(t, "oci")
	needPlugin(t, "archive")
	needPlugin(t, "dir")
	dir := t.TempDir()
	genImage(t, filepath.Join(dir, "gen"), "v1", 1, 4<<10)
	src := "oci:" + dir + "/gen:v1"
	tar, d := filepath.Join(dir, "a.tar"), filepath.Join(dir, "d")
	mustRun(t, "copy", src, "oci-archive:"+tar+":v1")
	mustRun(t, "copy", src, "dir:"+d)
	os.Chmod(tar, 0o600)
	os.Chmod(d, 0o700)
	mustRun(t, "copy", src, "oci-archive:"+tar+":v2")
	mustRun(t, "copy", src, "dir:"+d)
	if fi, _ := os.Stat(tar); fi.Mode().Perm() != 0o600 {
		t.Fatalf("archive rewritten with mode %v, want 0600", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(d); fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir: rewritten with mode %v, want 0700", fi.Mode().Perm())
	}
	// umask 077: a new archive is 0600, a new dir: 0700.
	line := fmt.Sprintf("umask 077; %q copy %q %q && %q copy %q %q", filepath.Join(binDir, "stevedore"), src, "oci-archive:"+dir+"/u.tar:v1",
		filepath.Join(binDir, "stevedore"), src, "dir:"+dir+"/u")
	cmd := exec.Command("sh", "-c", line)
	cmd.Env = append(os.Environ(), "STEVEDORE_PLUGIN_PATH="+binDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "u.tar")); fi.Mode().Perm() != 0o600 {
		t.Fatalf("new archive under umask 077: %v", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Join(dir, "u")); fi.Mode().Perm() != 0o700 {
		t.Fatalf("new dir: under umask 077: %v", fi.Mode().Perm())
	}
}

// A docker-archive stores its layers uncompressed, so it holds another
// manifest than the source's: copy prints, and --digestfile records, the one
// it holds.
func TestDockerArchiveDigestIsWhatItHolds(t *testing.T) {
	needPlugin(t, "oci")
	needPlugin(t, "archive")
	dir := t.TempDir()
	img := genImage(t, filepath.Join(dir, "gen"), "v1", 2, 8<<10)
	for _, dst := range []string{"docker-archive:" + dir + "/a.tar:app:v1", "docker-archive:" + dir + "/b.tar"} {
		df := filepath.Join(dir, "df")
		out := strings.TrimSpace(mustRun(t, "copy", "-q", "--digestfile", df, "oci:"+dir+"/gen:v1", dst))
		held := strings.TrimSpace(mustRun(t, "inspect", "--format", "{{.Digest}}", dst))
		recorded, _ := os.ReadFile(df)
		if out != held || string(recorded) != held || held == img.Manifest.Digest.String() {
			t.Fatalf("%s: printed %s, recorded %s, the archive holds %s (source %s)", dst, out, recorded, held, img.Manifest.Digest)
		}
	}
	// Without -q the plugin's warning says so, one line under the
	// plugin's name, without go-plugin's bookkeeping fields.
	_, errOut, err := runCLI(t, "copy", "oci:"+dir+"/gen:v1", "docker-archive:"+dir+"/c.tar:app:v1")
	if err != nil {
		t.Fatal(err)
	}
	warn := strings.TrimSpace(errOut)
	if !strings.HasPrefix(warn, "[WARN]  stevedore.archive: docker-archive ") || !strings.HasSuffix(warn, "is unchanged") || strings.Contains(warn, "\n") {
		t.Fatalf("warning: %q", errOut)
	}
}
