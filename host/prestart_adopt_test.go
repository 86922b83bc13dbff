package host_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/host/prestart"
)

// startedAhead builds the oci plugin, starts it as the CLI does before its
// packages initialise (package prestart) and returns the binary's
// directory, a layout image to inspect and the pid started ahead.
func startedAhead(t *testing.T) (bin, image string, pid int) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a plugin binary")
	}
	bin = t.TempDir()
	path := filepath.Join(bin, "stevedore-transport-oci")
	if out, err := exec.Command("go", "build", "-o", path, "../plugins/oci-layout").CombinedOutput(); err != nil {
		t.Fatalf("build plugin: %v\n%s", err, out)
	}
	f := newSyncFixture(t)
	dir := filepath.Join(t.TempDir(), "src")
	f.writeLayout(t, dir, syncRepos[0])
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("TMPDIR", t.TempDir())
	prestart.Start([]string{path})
	t.Cleanup(prestart.Release)
	kids := childPlugins(t)
	if len(kids) != 1 {
		t.Fatalf("%d plugin processes after prestart.Start (%v), want 1", len(kids), kids)
	}
	return bin, "oci:" + dir + ":" + syncTags[0], kids[0]
}

// inspectWith inspects image with a new host of opts, closed when the test
// ends.
func inspectWith(t *testing.T, opts host.Options, image string) *host.Host {
	t.Helper()
	h, err := host.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if _, err := h.Inspect(context.Background(), image, host.InspectOptions{}); err != nil {
		t.Fatal(err)
	}
	return h
}

// The host uses the process started ahead (no second process), and its
// Close stops it and removes the socket directory it came with.
func TestHostAdoptsPluginStartedAhead(t *testing.T) {
	bin, image, pid := startedAhead(t)
	h := inspectWith(t, host.Options{SearchPath: []string{bin}}, image)
	if kids := childPlugins(t); !slices.Equal(kids, []int{pid}) {
		t.Fatalf("plugin processes %v, want only the one started ahead (%d)", kids, pid)
	}
	h.Close()
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("process %d (started ahead) still exists after Close", pid)
	}
	if left, _ := os.ReadDir(os.Getenv("TMPDIR")); len(left) != 0 {
		t.Fatalf("left in $TMPDIR after Close: %v", left)
	}
}

// Abort, after which the CLI exits without Close, removes the socket
// directory (here the one the process started ahead came with).
func TestHostAbortRemovesSocketDir(t *testing.T) {
	bin, image, pid := startedAhead(t)
	h := inspectWith(t, host.Options{SearchPath: []string{bin}}, image)
	h.Abort()
	if left, _ := os.ReadDir(os.Getenv("TMPDIR")); len(left) != 0 {
		t.Fatalf("left in $TMPDIR after Abort: %v", left)
	}
	h.Close()
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("process %d still exists after Abort and Close", pid)
	}
}

// A process started with another environment than the host's is not used:
// the host kills and reaps it and starts its own.
func TestHostRefusesPluginStartedAheadWithOtherEnvironment(t *testing.T) {
	bin, image, pid := startedAhead(t)
	t.Setenv("STEVEDORE_TEST_SETTING", "set after the start") // plugins see STEVEDORE_*
	inspectWith(t, host.Options{SearchPath: []string{bin}}, image)
	kids := childPlugins(t)
	if len(kids) != 1 || kids[0] == pid {
		t.Fatalf("plugin processes %v, want one that is not the one started ahead (%d)", kids, pid)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("process %d (started ahead, not used) still exists", pid)
	}
}

// A pinned binary is never run unhashed: a process started ahead of a host
// with pins is killed, and the host starts the binary after checking it.
func TestHostWithPinsRefusesPluginStartedAhead(t *testing.T) {
	bin, image, pid := startedAhead(t)
	path := filepath.Join(bin, "stevedore-transport-oci")
	sum, err := host.FileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(t.TempDir(), "plugins.lock")
	if err := os.WriteFile(lock, []byte(sum+"  oci\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pins, err := host.LoadPins(lock)
	if err != nil {
		t.Fatal(err)
	}
	inspectWith(t, host.Options{SearchPath: []string{bin}, Pins: pins}, image)
	if kids := childPlugins(t); len(kids) != 1 || kids[0] == pid {
		t.Fatalf("plugin processes %v, want one that is not the one started ahead (%d)", kids, pid)
	}
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("process %d (started ahead of a pinned host) still exists", pid)
	}
}
