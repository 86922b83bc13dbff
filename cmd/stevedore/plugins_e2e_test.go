package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stevedore-oci/stevedore/host"
)

// End-to-end tests of third-party transports and plugin hygiene: each test
// runs the real CLI from a directory of its own under binDir holding only
// the plugins it needs, so the process table check (pluginProcesses) covers
// every plugin it starts.

// variants caches binaries built for these tests, by output name.
var variants sync.Map // string -> *variant

type variant struct {
	once sync.Once
	path string
	err  error
}

// buildVariant builds pkg (relative to dir, a module root relative to this
// package) into binDir/variants/NAME once per test binary.
func buildVariant(t *testing.T, name, dir, pkg string, ldflags string) string {
	t.Helper()
	v, _ := variants.LoadOrStore(name, &variant{})
	b := v.(*variant)
	b.once.Do(func() {
		out := filepath.Join(binDir, "variants", name, variantFile(name))
		args := []string{"build", "-o", out}
		if ldflags != "" {
			args = append(args, "-ldflags", ldflags)
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = dir
		if o, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s in %s: %v\n%s", pkg, dir, err, o)
			return
		}
		b.path = out
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// variantFile is the file name of a variant: the plugin binary name of the
// transport its name starts with ("oci-swapped" -> stevedore-transport-oci).
func variantFile(name string) string {
	transport, _, _ := strings.Cut(name, "-")
	return host.BinaryPrefix + transport
}

const pluginapiPkg = "github.com/stevedore-oci/stevedore/pluginapi"

func memPlugin(t *testing.T) string {
	return buildVariant(t, "mem", "../..", "./pluginapi/internal/testplugin/cmd/stevedore-plugin-mem", "")
}

func zipPlugin(t *testing.T) string {
	// Built in its own module, as its author would.
	return buildVariant(t, "zip", "../../examples/custom-transport", ".", "")
}

// installDir makes a directory under binDir holding the CLI and the given
// plugin binaries (hard links), for a CLI run that sees nothing else.
func installDir(t *testing.T, bins ...string) string {
	t.Helper()
	dir, err := os.MkdirTemp(binDir, "t-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, b := range append([]string{filepath.Join(binDir, "stevedore")}, bins...) {
		if err := os.Link(b, filepath.Join(dir, filepath.Base(b))); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func builtin(t *testing.T, name string) string {
	needPlugin(t, name)
	return filepath.Join(binDir, host.BinaryPrefix+name)
}

// cliRun runs dir/stevedore with env added to a clean environment: no
// STEVEDORE_* from the caller, fresh XDG directories (no user pin file).
type cliRun struct {
	stdout, stderr string
	err            error
	took           time.Duration
}

func runFrom(t *testing.T, dir string, env []string, args ...string) cliRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "stevedore"), args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STEVEDORE_") && !strings.HasPrefix(kv, "XDG_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "XDG_DATA_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	return cliRun{stdout: stdout.String(), stderr: stderr.String(), err: err, took: time.Since(start)}
}

func mustFrom(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	r := runFrom(t, dir, env, args...)
	if r.err != nil {
		t.Fatalf("stevedore %s: %v\nstderr: %s", strings.Join(args, " "), r.err, r.stderr)
	}
	return r.stdout
}

// wantOneLineError checks that a run failed with a one-line message holding
// every want.
func wantOneLineError(t *testing.T, r cliRun, want ...string) {
	t.Helper()
	if r.err == nil {
		t.Fatalf("succeeded, want an error naming %q\nstdout: %s", want, r.stdout)
	}
	msg := strings.TrimSpace(r.stderr)
	if strings.Contains(msg, "\n") {
		t.Fatalf("stderr is not one line:\n%s", msg)
	}
	t.Logf("error (after %s): %s", r.took.Round(time.Millisecond), msg)
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Fatalf("error does not contain %q:\n%s", w, msg)
		}
	}
}

type pluginRow struct {
	Name       string   `json:"name"`
	Transports []string `json:"transports"`
	Protocols  []int    `json:"protocolVersions"`
	Version    string   `json:"version"`
	Path       string   `json:"path"`
	SHA256     string   `json:"sha256"`
	Shadowed   []string `json:"shadowed"`
	Error      string   `json:"error"`
}

func pluginRows(t *testing.T, dir string, env []string) map[string]pluginRow {
	t.Helper()
	var rows []pluginRow
	if err := json.Unmarshal([]byte(mustFrom(t, dir, env, "plugins", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	m := map[string]pluginRow{}
	for _, r := range rows {
		m[r.Name] = r
	}
	return m
}

// sameBlobs checks that every blob of layout a is in layout b, same bytes.
func sameBlobs(t *testing.T, a, b string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(a, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		x, _ := os.ReadFile(filepath.Join(a, "blobs", "sha256", e.Name()))
		y, err := os.ReadFile(filepath.Join(b, "blobs", "sha256", e.Name()))
		if err != nil || !bytes.Equal(x, y) {
			t.Fatalf("blob %s differs or is missing in %s: %v", e.Name(), b, err)
		}
	}
}

// The out-of-tree zip transport, built in its own module, works from the
// CLI once its binary is on STEVEDORE_PLUGIN_PATH: oci: -> zip: -> oci:
// keeps every digest, for an image and for a whole index.
func TestThirdPartyZipTransport(t *testing.T) {
	zip := zipPlugin(t)
	dir := installDir(t, builtin(t, "oci"))
	env := []string{"STEVEDORE_PLUGIN_PATH=" + filepath.Dir(zip)}
	work := t.TempDir()
	img := genImage(t, filepath.Join(work, "src"), "v1", 3, 300<<10)
	want := img.Manifest.Digest.String()

	archive := filepath.Join(work, "images.zip")
	if got := strings.TrimSpace(mustFrom(t, dir, env, "copy", "oci:"+work+"/src:v1", "zip:"+archive+":v1")); got != want {
		t.Fatalf("copy to zip printed %s, want %s", got, want)
	}
	if got := strings.TrimSpace(mustFrom(t, dir, env, "copy", "zip:"+archive+":v1", "oci:"+work+"/back:v1")); got != want {
		t.Fatalf("copy from zip printed %s, want %s", got, want)
	}
	raw := mustFrom(t, dir, env, "inspect", "--raw", "oci:"+work+"/back:v1")
	if shaBytes([]byte(raw)) != want {
		t.Fatalf("manifest after oci -> zip -> oci has digest %s, want %s", shaBytes([]byte(raw)), want)
	}
	sameBlobs(t, filepath.Join(work, "src"), filepath.Join(work, "back"))

	idx := genIndex(t, filepath.Join(work, "isrc"), "multi")
	mustFrom(t, dir, env, "copy", "--all", "oci:"+work+"/isrc:multi", "zip:"+archive+":multi")
	mustFrom(t, dir, env, "copy", "--all", "zip:"+archive+":multi", "oci:"+work+"/iback:multi")
	if got := shaBytes([]byte(mustFrom(t, dir, env, "inspect", "--raw", "oci:"+work+"/iback:multi"))); got != idx.Digest.String() {
		t.Fatalf("index after oci -> zip -> oci: %s, want %s", got, idx.Digest)
	}
	sameBlobs(t, filepath.Join(work, "isrc"), filepath.Join(work, "iback"))

	var tags struct{ Tags []string }
	if err := json.Unmarshal([]byte(mustFrom(t, dir, env, "list-tags", "zip:"+archive)), &tags); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tags.Tags, []string{"multi", "v1"}) {
		t.Fatalf("zip tags %v, want [multi v1]", tags.Tags)
	}
	mustFrom(t, dir, env, "delete", "zip:"+archive+":multi")
	if err := json.Unmarshal([]byte(mustFrom(t, dir, env, "list-tags", "zip:"+archive)), &tags); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tags.Tags, []string{"v1"}) {
		t.Fatalf("zip tags after delete %v, want [v1]", tags.Tags)
	}
	row := pluginRows(t, dir, env)["zip"]
	if row.Path != zip || row.Version != "0.1.0" || !slices.Equal(row.Transports, []string{"zip"}) || row.Error != "" {
		t.Fatalf("plugins --json lists zip as %+v", row)
	}
	assertNoPluginProcesses(t)
}

// A variant of the built-in oci plugin placed earlier on the search path
// replaces it without rebuilding stevedore; the listing shows which binary
// wins and which is shadowed.
func TestSwapBuiltinPlugin(t *testing.T) {
	oci := builtin(t, "oci")
	swapped := buildVariant(t, "oci-swapped", "../..", "./plugins/oci-layout", "-X "+pluginapiPkg+".linkVersion=swapped-9.9")
	dir := installDir(t, oci)
	installed := filepath.Join(dir, filepath.Base(oci))

	before := pluginRows(t, dir, nil)["oci"]
	if before.Path != installed || before.Version == "swapped-9.9" {
		t.Fatalf("without the variant: %+v", before)
	}

	env := []string{"STEVEDORE_PLUGIN_PATH=" + filepath.Dir(swapped)}
	row := pluginRows(t, dir, env)["oci"]
	if row.Path != swapped || row.Version != "swapped-9.9" || !slices.Equal(row.Shadowed, []string{installed}) {
		t.Fatalf("with the variant first on the path: %+v, want path %s, version swapped-9.9, shadowing %s", row, swapped, installed)
	}
	if table := mustFrom(t, dir, env, "plugins"); !strings.Contains(table, "(shadowed)") || !strings.Contains(table, installed) {
		t.Fatalf("table does not show the shadowed binary:\n%s", table)
	}

	work := t.TempDir()
	img := genImage(t, filepath.Join(work, "src"), "v1", 2, 64<<10)
	r := runFrom(t, dir, env, "--debug", "copy", "oci:"+work+"/src:v1", "oci:"+work+"/dst:v1")
	if r.err != nil || strings.TrimSpace(r.stdout) != img.Manifest.Digest.String() {
		t.Fatalf("copy through the variant: %v %s\n%s", r.err, r.stdout, r.stderr)
	}
	// go-plugin logs the path of every binary it starts.
	if !strings.Contains(r.stderr, swapped) || strings.Contains(r.stderr, "path="+installed) {
		t.Fatalf("the copy did not run the variant (%s):\n%s", swapped, r.stderr)
	}
	assertNoPluginProcesses(t)
}

// Protocol negotiation: a plugin that speaks only a protocol this
// stevedore does not is refused with both version lists; one that also
// speaks ours is used at ours.
func TestProtocolVersionMismatch(t *testing.T) {
	future := buildVariant(t, "oci-proto7", "../..", "./plugins/oci-layout", "-X "+pluginapiPkg+".servedProtocolVersions=7")
	both := buildVariant(t, "oci-proto1-2", "../..", "./plugins/oci-layout", "-X "+pluginapiPkg+".servedProtocolVersions=1,2")
	dir := installDir(t)
	work := t.TempDir()
	genImage(t, filepath.Join(work, "src"), "v1", 1, 1000)

	env := []string{"STEVEDORE_PLUGIN_PATH=" + filepath.Dir(future)}
	r := runFrom(t, dir, env, "copy", "oci:"+work+"/src:v1", "oci:"+work+"/dst:v1")
	wantOneLineError(t, r, "plugin oci ("+future+")", "incompatible plugin protocol", "the plugin speaks version 7", "this stevedore speaks 1")
	if row := pluginRows(t, dir, env)["oci"]; !strings.Contains(row.Error, "speaks version 7") {
		t.Fatalf("plugins --json: %+v", row)
	}
	assertNoPluginProcesses(t)

	env = []string{"STEVEDORE_PLUGIN_PATH=" + filepath.Dir(both)}
	mustFrom(t, dir, env, "copy", "oci:"+work+"/src:v1", "oci:"+work+"/dst:v1")
	if row := pluginRows(t, dir, env)["oci"]; !slices.Equal(row.Protocols, []int{1, 2}) || row.Error != "" {
		t.Fatalf("plugins --json for a 1,2 plugin: %+v", row)
	}
	assertNoPluginProcesses(t)
}

// --checksums prints pin-file lines; a pin file makes stevedore refuse a
// binary whose checksum differs, including one that shadows a pinned name.
func TestPluginChecksumPins(t *testing.T) {
	oci := builtin(t, "oci")
	dir := installDir(t, oci)
	installed := filepath.Join(dir, filepath.Base(oci))
	sum, err := host.FileSHA256(installed)
	if err != nil {
		t.Fatal(err)
	}
	out := mustFrom(t, dir, nil, "plugins", "--checksums")
	if !strings.Contains(out, sum+"  oci\n") {
		t.Fatalf("--checksums output lacks %q:\n%s", sum+"  oci", out)
	}
	work := t.TempDir()
	genImage(t, filepath.Join(work, "src"), "v1", 1, 1000)
	lock := filepath.Join(work, "plugins.lock")
	if err := os.WriteFile(lock, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	copyArgs := []string{"copy", "oci:" + work + "/src:v1", "oci:" + work + "/dst:v1"}
	mustFrom(t, dir, nil, append([]string{"--plugin-lock", lock}, copyArgs...)...)

	// A different binary under the pinned name, earlier on the path.
	other := buildVariant(t, "oci-swapped", "../..", "./plugins/oci-layout", "-X "+pluginapiPkg+".linkVersion=swapped-9.9")
	otherSum, _ := host.FileSHA256(other)
	env := []string{"STEVEDORE_PLUGIN_PATH=" + filepath.Dir(other)}
	r := runFrom(t, dir, env, append([]string{"--plugin-lock", lock}, copyArgs...)...)
	wantOneLineError(t, r, "plugin oci ("+other+")", "sha256 "+otherSum, "does not match the pinned "+sum, lock)

	// The default pin file is honoured without the flag.
	config := t.TempDir()
	os.MkdirAll(filepath.Join(config, "stevedore"), 0o755)
	os.WriteFile(filepath.Join(config, "stevedore", "plugins.lock"), []byte(out), 0o644)
	r = runFrom(t, dir, append(env, "XDG_CONFIG_HOME="+config), copyArgs...)
	wantOneLineError(t, r, "does not match the pinned "+sum)

	// A pin by path allows that binary and no other there.
	byPath := []byte(otherSum + "  " + other + "\n")
	os.WriteFile(lock, byPath, 0o644)
	mustFrom(t, dir, env, append([]string{"--plugin-lock", lock}, copyArgs...)...)

	r = runFrom(t, dir, nil, "--plugin-lock", filepath.Join(work, "missing.lock"), "plugins")
	wantOneLineError(t, r, "missing.lock")
	assertNoPluginProcesses(t)
}

// hygieneSetup installs the CLI with the oci and mem plugins and writes a
// source layout with 1 MiB layers.
func hygieneSetup(t *testing.T) (dir, work string) {
	dir = installDir(t, builtin(t, "oci"), memPlugin(t))
	work = t.TempDir()
	genImage(t, filepath.Join(work, "src"), "v1", 2, 1<<20)
	return dir, work
}

func assertNotTagged(t *testing.T, layoutDir string) {
	t.Helper()
	if idx, err := os.ReadFile(filepath.Join(layoutDir, "index.json")); err == nil && strings.Contains(string(idx), `"org.opencontainers.image.ref.name"`) {
		t.Fatalf("destination was tagged after a failed copy: %s", idx)
	}
}

// A source plugin that dies in the middle of a blob: the copy fails naming
// it, the destination is not tagged, nothing is left running.
func TestPluginCrashMidBlob(t *testing.T) {
	dir, work := hygieneSetup(t)
	env := []string{"STEVEDORE_MEM_OPTIONS=seed=" + work + "/src,crash-after=300000"}
	r := runFrom(t, dir, env, "copy", "mem:m:v1", "oci:"+work+"/dst:v1")
	wantOneLineError(t, r, "plugin mem ("+filepath.Join(dir, host.BinaryPrefix+"mem")+")", "plugin process exited during get blob sha256:")
	assertNotTagged(t, filepath.Join(work, "dst"))
	assertNoPluginProcesses(t)
}

// A plugin that never answers a control call: the per-call deadline ends
// the copy with a message naming the plugin and the call.
func TestPluginHangsOnCall(t *testing.T) {
	dir, work := hygieneSetup(t)
	env := []string{"STEVEDORE_MEM_OPTIONS=hang=resolve", "STEVEDORE_PLUGIN_CALL_TIMEOUT=1s"}
	r := runFrom(t, dir, env, "copy", "mem:m:v1", "oci:"+work+"/dst:v1")
	wantOneLineError(t, r, "plugin mem (", `resolve "v1": no answer within 1s`, "STEVEDORE_PLUGIN_CALL_TIMEOUT")
	if r.took > 20*time.Second {
		t.Fatalf("took %s to give up on a 1s deadline", r.took)
	}
	assertNoPluginProcesses(t)
}

// A source that stops sending in the middle of a blob, and a destination
// that stops taking one: the inactivity timeout ends each copy.
func TestPluginStallsMidBlob(t *testing.T) {
	dir, work := hygieneSetup(t)
	idle := "STEVEDORE_PLUGIN_IDLE_TIMEOUT=1s"

	r := runFrom(t, dir, []string{idle, "STEVEDORE_MEM_OPTIONS=seed=" + work + "/src,stall-after=100000"}, "copy", "mem:m:v1", "oci:"+work+"/dst:v1")
	wantOneLineError(t, r, "plugin mem (", "get blob sha256:", "no data moved for 1s", "STEVEDORE_PLUGIN_IDLE_TIMEOUT")
	assertNotTagged(t, filepath.Join(work, "dst"))
	assertNoPluginProcesses(t)

	r = runFrom(t, dir, []string{idle, "STEVEDORE_MEM_OPTIONS=stall-put=true"}, "copy", "oci:"+work+"/src:v1", "mem:m:v1")
	wantOneLineError(t, r, "plugin mem (", "put blob sha256:", "no data moved for 1s")
	if r.took > 20*time.Second {
		t.Fatalf("took %s to give up on a 1s inactivity timeout", r.took)
	}
	assertNoPluginProcesses(t)
}

// A destination that uploads a blob from a local file itself
// (put-blob-file) and stops reporting progress is given up after the
// inactivity timeout, as one that stops reading a streamed blob is; it was
// waited on without bound before it could report progress.
func TestPluginStallsUploadingFile(t *testing.T) {
	dir, work := hygieneSetup(t)
	idle := "STEVEDORE_PLUGIN_IDLE_TIMEOUT=1s"
	mustFrom(t, dir, []string{"STEVEDORE_MEM_OPTIONS=file-put=true"}, "copy", "oci:"+work+"/src:v1", "mem:m:v1")

	r := runFrom(t, dir, []string{idle, "STEVEDORE_MEM_OPTIONS=file-put=true,stall-put=true"}, "copy", "oci:"+work+"/src:v1", "mem:m:v1")
	wantOneLineError(t, r, "plugin mem (", "put blob sha256:", " from "+work, "no data moved for 1s")
	if r.took > 20*time.Second {
		t.Fatalf("took %s to give up on a 1s inactivity timeout", r.took)
	}
	assertNoPluginProcesses(t)
}

// A plugin that prints to stdout before its handshake is refused with a
// message that says so.
func TestPluginGarbageBeforeHandshake(t *testing.T) {
	dir, work := hygieneSetup(t)
	r := runFrom(t, dir, []string{"STEVEDORE_MEM_OPTIONS=stdout-garbage=true"}, "copy", "oci:"+work+"/src:v1", "mem:m:v1")
	wantOneLineError(t, r, "plugin mem (", "printed to stdout before the handshake", "hello from a plugin")
	assertNoPluginProcesses(t)
}

// A third-party plugin listing a built-in transport among its own does not
// get it (it would be handed that transport's content and credentials):
// the built-in's binary serves it, and the claim is reported.
func TestPluginCannotTakeOverBuiltin(t *testing.T) {
	dir, work := hygieneSetup(t)
	env := []string{"STEVEDORE_MEM_OPTIONS=seed=" + work + "/src,claims=oci+docker"}
	r := runFrom(t, dir, env, "copy", "mem:m:v1", "oci:"+work+"/dst:v1")
	if r.err != nil {
		t.Fatalf("copy with a plugin claiming oci: %v\n%s", r.err, r.stderr)
	}
	if !strings.Contains(r.stderr, "claims transport oci, which another binary serves: ignored") {
		t.Fatalf("the claim was not reported: %s", r.stderr)
	}
	if out := mustFrom(t, dir, nil, "inspect", "--format", "{{.Digest}}", "oci:"+work+"/dst:v1"); strings.TrimSpace(out) != strings.TrimSpace(r.stdout) {
		t.Fatalf("the oci layout holds %s, the copy printed %s", out, r.stdout)
	}
	assertNoPluginProcesses(t)
}

// A plugin that started a process of its own and then failed its handshake
// (or was stopped): the command ends at once, and the plugin's whole
// process group goes with it (a child holding the plugin's output open
// used to keep the host waiting until it ended).
func TestPluginChildDoesNotHoldHost(t *testing.T) {
	dir := installDir(t, builtin(t, "oci"))
	script := filepath.Join(dir, host.BinaryPrefix+"xyz")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho not a handshake\nsleep 987\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := runFrom(t, dir, nil, "inspect", "xyz:somewhere")
	if r.err == nil || !strings.Contains(r.stderr, "not a Stevedore plugin") {
		t.Fatalf("inspect through a broken plugin: %v %s", r.err, r.stderr)
	}
	if r.took > 10*time.Second {
		t.Fatalf("took %s: the host waited for the plugin's child", r.took)
	}
	// The child: a live "sleep 987" (a zombie has no command line).
	child := func() string {
		cmds, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, c := range cmds {
			if b, _ := os.ReadFile(c); string(b) == "sleep\x00987\x00" {
				return c
			}
		}
		return ""
	}
	deadline := time.Now().Add(5 * time.Second)
	for c := child(); c != ""; c = child() {
		if time.Now().After(deadline) {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(c))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("the plugin's child is still running (%s)", c)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A copy that fails while a destination plugin still has blob writes under
// way: those calls are cancelled, and the host lets them finish (a plugin
// removes what they half wrote) before the plugin process ends, rather
// than killing it at once and leaving temporary files behind. The failure
// is the inactivity timeout of a write the plugin stalls, so that writes
// are surely under way when it comes (a missing source blob failed the
// copy before any had started, now and then).
func TestPluginFinishesCancelledCalls(t *testing.T) {
	dir := installDir(t, builtin(t, "oci"), memPlugin(t))
	src := filepath.Join(t.TempDir(), "src")
	genImage(t, src, "v1", 3, 1<<20)
	marks := t.TempDir()
	r := runFrom(t, dir, []string{"STEVEDORE_PLUGIN_IDLE_TIMEOUT=1s", "STEVEDORE_MEM_OPTIONS=stall-put=true,abort-marker=" + marks}, "copy", "oci:"+src+":v1", "mem:m:v1")
	wantOneLineError(t, r, "put blob sha256:", "no data moved for 1s")
	if ents, _ := os.ReadDir(marks); len(ents) == 0 {
		t.Fatal("the plugin was stopped before its cancelled writes finished cleaning up")
	}
	assertNoPluginProcesses(t)
}

// An interrupted command whose plugin no longer answers (its Close never
// returns) ends in seconds, not after the plugin call deadline; a second
// interrupt ends it at once. Either way no plugin process is left.
func TestInterruptWithWedgedPlugin(t *testing.T) {
	dir := installDir(t, builtin(t, "oci"), memPlugin(t))
	work := t.TempDir()
	genImage(t, filepath.Join(work, "src"), "v1", 2, 1<<20)
	for _, signals := range []int{1, 2} {
		cmd := exec.Command(filepath.Join(dir, "stevedore"), "copy", "mem:m:v1", "oci:"+work+"/dst:v1")
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "STEVEDORE_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		// The socket directories go here, to be checked once it exits.
		tmp := socketTempDir(t)
		cmd.Env = append(cmd.Env, "STEVEDORE_PLUGIN_CALL_TIMEOUT=90s", "TMPDIR="+tmp, "XDG_RUNTIME_DIR=",
			"STEVEDORE_MEM_OPTIONS=seed="+work+"/src,stall-after=1000,hang=close")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		time.Sleep(1500 * time.Millisecond) // the copy is stalled in a blob
		start := time.Now()
		for i := 0; i < signals; i++ {
			cmd.Process.Signal(os.Interrupt)
			time.Sleep(200 * time.Millisecond)
		}
		limit := 15 * time.Second
		if signals == 2 {
			limit = 3 * time.Second
		}
		select {
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 130 {
				t.Fatalf("%d interrupts: %v, want exit status 130\n%s", signals, err, stderr.String())
			}
			if took := time.Since(start); took > limit {
				t.Fatalf("%d interrupts: the command ended %s after the first, want under %s\n%s", signals, took, limit, stderr.String())
			}
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%d interrupts: the command was still running a minute later\n%s", signals, stderr.String())
		}
		assertNoPluginProcesses(t)
		// The second interrupt exits at once, without the host's Close:
		// its socket directories used to stay (the plugins' and the data
		// plane's).
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Fatalf("%d interrupts: left in $TMPDIR: %v", signals, left)
		}
	}
}
