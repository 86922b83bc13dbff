package prestart

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary is the plugin binary of these tests: started with
// STEVEDORE_PRESTART_TEST_CHILD=sleep (Start passes STEVEDORE_* variables
// on), it sleeps until killed.
func TestMain(m *testing.M) {
	if os.Getenv("PRESTART_TEST_ROLE") == "starter" {
		// TestSignalBeforeHandled's CLI: it starts the test binary ahead
		// (a sleeper: STEVEDORE_* variables pass, this one does not),
		// says so, and waits for a signal it does not handle itself.
		self, _ := os.Executable()
		Start([]string{self})
		mu.Lock()
		fmt.Println(procs[self].Process.Pid, dir)
		mu.Unlock()
		time.Sleep(time.Minute)
		os.Exit(4)
	}
	if os.Getenv("PRESTART_TEST_ROLE") == "handover" {
		// TestSignalAfterHandled's CLI: it starts a sleeper ahead, takes
		// the signals over, and reports the one it receives.
		self, _ := os.Executable()
		Start([]string{self})
		c := SignalsHandled()
		fmt.Println("ready")
		select {
		case s := <-c:
			fmt.Println("got", s)
		case <-time.After(10 * time.Second):
			fmt.Println("no signal")
		}
		Release()
		os.Exit(0)
	}
	if os.Getenv("STEVEDORE_PRESTART_TEST_CHILD") == "sleep" {
		time.Sleep(time.Minute)
		os.Exit(3)
	}
	os.Exit(m.Run())
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func startSelf(t *testing.T) string {
	t.Helper()
	t.Setenv("STEVEDORE_PRESTART_TEST_CHILD", "sleep")
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("TMPDIR", t.TempDir())
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	Start([]string{self, self})
	t.Cleanup(Release)
	return self
}

// Start starts each binary once; Take hands a process over once; the
// process runs with the host's environment for plugins, go-plugin's
// variables and the socket directory TakeDir hands over.
func TestStartTake(t *testing.T) {
	self := startSelf(t)
	p := Take(self)
	if p == nil {
		t.Fatal("Take: no process started for", self)
	}
	defer func() { p.Kill(); p.Reap() }()
	if again := Take(self); again != nil {
		t.Fatalf("Take handed the process over twice (or Start started %s twice)", self)
	}
	if !alive(p.Process.Pid) {
		t.Fatal("the process started ahead is not running")
	}
	dir := TakeDir()
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || filepath.Dir(dir) != os.Getenv("TMPDIR") {
		t.Fatalf("TakeDir = %q (%v), want a directory under $TMPDIR", dir, err)
	}
	defer os.RemoveAll(dir)
	if d := TakeDir(); d != "" {
		t.Fatalf("TakeDir handed the directory over twice: %q", d)
	}
	want := append(Env(dir), goPluginEnv()...)
	if k := p.Differs(want); k != "" {
		t.Fatalf("the process's environment differs from the host's in %s", k)
	}
}

// startedSelf is startSelf, with the process started and the socket
// directory (neither taken).
func startedSelf(t *testing.T) (string, *Proc, string) {
	t.Helper()
	self := startSelf(t)
	mu.Lock()
	p, d := procs[self], dir
	mu.Unlock()
	if p == nil || d == "" {
		t.Fatalf("nothing started (process %v, directory %q)", p, d)
	}
	return self, p, d
}

// Release kills and reaps what nobody took (no zombie left: signal 0
// finds no process) and removes the socket directory nobody took.
func TestRelease(t *testing.T) {
	self, p, d := startedSelf(t)
	Release()
	if alive(p.Process.Pid) {
		t.Fatalf("process %d still exists after Release", p.Process.Pid)
	}
	if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket directory %s still there after Release: %v", d, err)
	}
	if Take(self) != nil || TakeDir() != "" {
		t.Fatal("Release left something to take")
	}
}

// Abort (a second interrupt: the CLI exits at once, Release never runs)
// kills what nobody took and removes the socket directory nobody took.
func TestAbort(t *testing.T) {
	_, p, d := startedSelf(t)
	Abort()
	if _, err := p.Process.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket directory %s still there after Abort: %v", d, err)
	}
}

// startRole runs this test binary as the program of role (see TestMain),
// starting sleepers ahead in a $TMPDIR of its own, and returns it with its
// output and that directory.
func startRole(t *testing.T, role string) (*exec.Cmd, *bufio.Reader, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), "PRESTART_TEST_ROLE="+role, "STEVEDORE_PRESTART_TEST_CHILD=sleep", "TMPDIR="+tmp, "XDG_RUNTIME_DIR=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewReader(out), tmp
}

// A SIGINT that comes after Start and before the program handles signals
// itself (SignalsHandled) ends the program as it would have without Start
// (killed by the signal), and leaves neither the processes started ahead
// nor their socket directory.
func TestSignalBeforeHandled(t *testing.T) {
	cmd, out, _ := startRole(t, "starter")
	var pid int
	var d string
	line, _ := out.ReadString('\n')
	if _, err := fmt.Sscan(line, &pid, &d); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the starter said %q: %v", line, err)
	}
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Errorf("the starter ended with %v, want killed by SIGINT", cmd.ProcessState)
	}
	if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket directory %s still there after SIGINT: %v", d, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for running(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d started ahead still runs after its starter died", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// After SignalsHandled, a SIGINT is the program's: it arrives on the
// channel SignalsHandled returned (the one watched since Start), and the
// program goes on to release what was started ahead.
func TestSignalAfterHandled(t *testing.T) {
	cmd, r, tmp := startRole(t, "handover")
	if line, _ := r.ReadString('\n'); line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("the program said %q", line)
	}
	cmd.Process.Signal(os.Interrupt)
	line, _ := r.ReadString('\n')
	if err := cmd.Wait(); err != nil || line != "got interrupt\n" {
		t.Fatalf("after SIGINT the program said %q and ended with %v, want \"got interrupt\" and status 0", line, err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("left in $TMPDIR: %v", left)
	}
}

// running says whether process pid exists and is no zombie (the sleeper
// of a dead starter is reaped by whatever adopts it, maybe never).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func TestDiffers(t *testing.T) {
	p := &Proc{env: []string{"HOME=/root", "PLUGIN_UNIX_SOCKET_DIR=/tmp/a", "PLUGIN_PROTOCOL_VERSIONS=1,2", "X=1", "X=2"}}
	for _, c := range []struct {
		env  []string
		want string
	}{
		{[]string{"HOME=/root", "PLUGIN_UNIX_SOCKET_DIR=/tmp/b", "PLUGIN_PROTOCOL_VERSIONS=2,1", "X=2"}, ""},
		{[]string{"HOME=/root", "PLUGIN_PROTOCOL_VERSIONS=1,2", "X=2"}, ""},
		{[]string{"HOME=/home", "PLUGIN_PROTOCOL_VERSIONS=1,2", "X=2"}, "HOME"},
		{[]string{"HOME=/root", "PLUGIN_PROTOCOL_VERSIONS=1", "X=2"}, "PLUGIN_PROTOCOL_VERSIONS"},
		{[]string{"HOME=/root", "PLUGIN_PROTOCOL_VERSIONS=1,2", "X=1"}, "X"},
		{[]string{"HOME=/root", "PLUGIN_PROTOCOL_VERSIONS=1,2"}, "X"},
		{[]string{"HOME=/root", "PLUGIN_PROTOCOL_VERSIONS=1,2", "X=2", "STEVEDORE_NEW=1"}, "STEVEDORE_NEW"},
	} {
		if got := p.Differs(c.env); got != c.want {
			t.Errorf("Differs(%q) = %q, want %q", c.env, got, c.want)
		}
	}
}

// Abs and the search path agree with path/filepath's, which the host used
// before they moved here.
func TestAbsAndSearchPath(t *testing.T) {
	for _, d := range []string{"/a/b/../c", "rel/dir", ".", "/", "a//b/"} {
		got, err := Abs(d)
		want, werr := filepath.Abs(d)
		if got != want || (err == nil) != (werr == nil) {
			t.Errorf("Abs(%q) = %q, %v; filepath.Abs says %q, %v", d, got, err, want, werr)
		}
	}
	t.Setenv("STEVEDORE_PLUGIN_PATH", "/p1::rel")
	t.Setenv("XDG_DATA_HOME", "/data")
	exe, _ := os.Executable()
	exe, _ = filepath.EvalSymlinks(exe)
	want := []string{"/p1", "rel", filepath.Dir(exe), "/data/stevedore/plugins"}
	got := SearchPath()
	if len(got) != len(want) {
		t.Fatalf("SearchPath() = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("SearchPath() = %q, want %q", got, want)
		}
	}
}

// Find skips a directory the host's discovery cannot list (it reads each
// directory), though the binary in it could be run: the host would run
// another binary or none, and the one found would run for nothing.
func TestFindSkipsUnlistableDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		// Root lists any directory: run this test as nobody (CI runs as
		// root), from a copy of the test binary nobody may run.
		asNobody(t, "^TestFindSkipsUnlistableDirectory$")
		return
	}
	hidden, shown := t.TempDir(), t.TempDir()
	for _, d := range []string{hidden, shown} {
		if err := os.WriteFile(filepath.Join(d, BinaryPrefix+"x"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(hidden, 0o311); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(hidden, 0o755)
	if got, want := Find([]string{hidden, shown}, "x"), filepath.Join(shown, BinaryPrefix+"x"); got != want {
		t.Errorf("Find = %q, want %q (the first directory cannot be listed)", got, want)
	}
}

// asNobody runs the tests matching run from this test binary as user
// nobody (uid and gid 65534) and fails if they fail or do not run.
func asNobody(t *testing.T, run string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "prestart-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "prestart.test")
	b, err := os.ReadFile(self)
	if err == nil {
		err = os.WriteFile(bin, b, 0o755)
	}
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run="+run, "-test.v")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=/tmp", "HOME=/nonexistent"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("as nobody, no test passed:\n%s", out)
	}
}
