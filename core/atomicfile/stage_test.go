package atomicfile

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A staging directory held by a live process survives a sweep, however old;
// killed with SIGKILL, it is swept (once past the grace for new ones).
func TestSweepStageDirsAfterKill(t *testing.T) {
	if os.Getenv("ATOMICFILE_HOLD_STAGE") != "" {
		s, err := MkdirStage(os.Getenv("ATOMICFILE_HOLD_STAGE"), ".img.stevedore-tmp-")
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(s.Path)
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	parent := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSweepStageDirsAfterKill$")
	cmd.Env = append(os.Environ(), "ATOMICFILE_HOLD_STAGE="+parent)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, parent) {
		t.Fatalf("child: %q %v", line, err)
	}
	held := strings.TrimSpace(line)
	if err := os.WriteFile(filepath.Join(held, "archive.tar"), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	age(t, held)

	// Beside it: one another writer just made (unheld for an instant), and
	// one of another archive.
	fresh := filepath.Join(parent, ".img.stevedore-tmp-fresh")
	other := filepath.Join(parent, ".other.stevedore-tmp-1")
	for _, d := range []string{fresh, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	age(t, other)

	if n := SweepStageDirs(parent, ".img.stevedore-tmp-"); n != 0 {
		t.Fatalf("swept %d directories with their writer alive", n)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if n := SweepStageDirs(parent, ".img.stevedore-tmp-"); n != 1 {
		t.Fatalf("swept %d directories after the writer's SIGKILL, want 1", n)
	}
	for _, d := range []string{fresh, other} {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
	}
	if _, err := os.Stat(held); !os.IsNotExist(err) {
		t.Fatalf("the killed writer's directory: %v", err)
	}
}

// A directory released after its writer is done with it is not held.
func TestStageDirRelease(t *testing.T) {
	parent := t.TempDir()
	s, err := MkdirStage(parent, ".x.stevedore-tmp-")
	if err != nil {
		t.Fatal(err)
	}
	age(t, s.Path)
	if n := SweepStageDirs(parent, ".x.stevedore-tmp-"); n != 0 {
		t.Fatalf("swept a held directory")
	}
	s.Release()
	s.Release()
	if n := SweepStageDirs(parent, ".x.stevedore-tmp-"); n != 1 {
		t.Fatalf("swept %d, want the released directory", n)
	}
}

func age(t *testing.T, p string) {
	t.Helper()
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
}
