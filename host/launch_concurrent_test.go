package host_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/proctest"
)

// childPlugins lists the live (not zombie) plugin processes this process
// started.
func childPlugins(t *testing.T) []int {
	t.Helper()
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc:", err)
	}
	var out []int
	for _, p := range proctest.List() {
		if p.PPid == os.Getpid() && !p.Zombie() && strings.HasPrefix(filepath.Base(p.Exe), "stevedore-transport-") {
			out = append(out, p.Pid)
		}
	}
	return out
}

// Copies started at once on a fresh host launch each plugin binary once:
// launches run outside the host's lock, and callers asking for a binary
// being launched wait for it. Close leaves no process behind.
func TestConcurrentCopiesLaunchOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin binary")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "stevedore-transport-oci"), "../plugins/oci-layout")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build plugin: %v\n%s", err, out)
	}
	f := newSyncFixture(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	f.writeLayout(t, src, syncRepos[0])
	h, err := host.New(host.Options{SearchPath: []string{bin}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := fmt.Sprintf("oci:%s:%s", filepath.Join(dir, "dst"+strconv.Itoa(i)), syncTags[i%len(syncTags)])
			if _, err := h.Copy(context.Background(), "oci:"+src+":"+syncTags[i%len(syncTags)], dst, host.CopyOptions{}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if kids := childPlugins(t); len(kids) != 1 {
		t.Fatalf("%d plugin processes running (%v), want 1", len(kids), kids)
	}
	h.Close()
	if kids := childPlugins(t); len(kids) != 0 {
		t.Fatalf("plugin processes left after Close: %v", kids)
	}
}
