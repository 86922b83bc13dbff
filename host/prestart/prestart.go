// Package prestart starts the transport plugins a command will need before
// the command's packages have finished initialising, so that a plugin's
// start-up (a Go process of its own, ~10 ms to answer go-plugin's
// handshake) overlaps the host's instead of following it.
//
// The stevedore CLI calls Start from the init function of a package with
// almost no imports (cmd/stevedore/internal/early), with the binaries its
// command line names. When the host later launches a binary, it adopts the
// process started here if the path and the environment are the ones it
// would have used (Take, then Proc.Differs), and starts the binary itself
// otherwise. Release kills and reaps what was not adopted.
//
// A process is started here only as the host would start it: found on the
// same search path, with the same environment, process group and
// parent-death signal, and never when a pin file is in effect (the host
// checks a pinned binary's sum before it runs it; nothing here does).
package prestart

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/stevedore-oci/stevedore/pluginapi/handshake"
)

// Proc is a plugin process started ahead of the host. It is started with
// os.StartProcess rather than os/exec, which imports path/filepath, whose
// initialisation comes late (see cmd/stevedore/internal/early).
type Proc struct {
	Path    string
	Process *os.Process
	// Stdout and Stderr are the read ends of the process's output pipes,
	// as exec.Cmd's StdoutPipe and StderrPipe would make them.
	Stdout, Stderr *os.File
	env            []string
}

var (
	mu    sync.Mutex
	dir   string // the socket directory, "" once taken or removed
	procs = map[string]*Proc{}
)

// goPluginEnv is what go-plugin's client appends to a plugin's environment
// (its default port range; Proc.Differs checks it against the real one).
func goPluginEnv() []string {
	vs := make([]string, len(handshake.ProtocolVersions))
	for i, v := range handshake.ProtocolVersions {
		vs[i] = strconv.Itoa(v)
	}
	return []string{
		handshake.CookieKey + "=" + handshake.CookieValue,
		"PLUGIN_MIN_PORT=10000",
		"PLUGIN_MAX_PORT=25000",
		"PLUGIN_PROTOCOL_VERSIONS=" + strings.Join(vs, ","),
	}
}

// Start starts each binary of paths (absolute, as Find returns them) as the
// host would, in a new socket directory. It reports nothing: what fails to
// start is left to the host, which will say why. Until SignalsHandled, a
// SIGINT or SIGTERM stops them, removes their directory and ends the
// program (see signals.go): its caller calls SignalsHandled before it
// handles those signals itself.
func Start(paths []string) {
	mu.Lock()
	defer mu.Unlock()
	watchSignalsLocked() // before anything is made that a signal would leave
	if dir == "" {
		d, err := handshake.MkdirSockets("stvd-")
		if err != nil {
			return
		}
		dir = d
	}
	env := append(Env(dir), goPluginEnv()...)
	for _, p := range paths {
		if _, dup := procs[p]; dup {
			continue
		}
		if proc := start(p, env); proc != nil {
			procs[p] = proc
		}
	}
}

// start starts the binary at p as exec.Command(p) would with env, the
// host's standard input, and pipes for its output.
func start(p string, env []string) *Proc {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil
	}
	proc, err := os.StartProcess(p, []string{p}, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{os.Stdin, outW, errW},
		Sys:   ProcAttr(),
	})
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil
	}
	return &Proc{Path: p, Process: proc, Stdout: outR, Stderr: errR, env: env}
}

// Take hands the process started for the binary at path to the caller,
// which then owns it (kills and reaps it); nil if there is none.
func Take(path string) *Proc {
	mu.Lock()
	defer mu.Unlock()
	p := procs[path]
	delete(procs, path)
	return p
}

// TakeDir hands the socket directory of the processes started here to the
// caller, which removes it when its plugins are stopped; "" if there is
// none.
func TakeDir() string {
	mu.Lock()
	defer mu.Unlock()
	d := dir
	dir = ""
	return d
}

// Release kills the processes nobody took, waits for them, and removes the
// socket directory if nobody took it.
func Release() {
	mu.Lock()
	defer mu.Unlock()
	var wg sync.WaitGroup
	for p, proc := range procs {
		delete(procs, p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			proc.Kill()
			proc.Reap()
		}()
	}
	wg.Wait()
	if dir != "" {
		os.RemoveAll(dir)
		dir = ""
	}
}

// Abort kills the processes nobody took without waiting for them, and
// removes the socket directory if nobody took it, for a command that is
// exiting at once (Release will not run: the directory would be left).
func Abort() {
	if !mu.TryLock() {
		return
	}
	defer mu.Unlock()
	for _, proc := range procs {
		proc.Kill()
	}
	if dir != "" {
		os.RemoveAll(dir)
		dir = ""
	}
}

// Kill kills the process and whatever it started (its process group).
func (p *Proc) Kill() {
	_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
	_ = p.Process.Kill()
}

// Reap waits for the process to end and closes its pipes: for a process
// nobody adopted, once killed.
func (p *Proc) Reap() {
	_, _ = p.Process.Wait()
	p.Stdout.Close()
	p.Stderr.Close()
}

// Differs compares the process's environment with env, the one the host
// would start the binary with, and names the first variable that differs,
// or returns "" when they agree. The socket directory is not compared (the
// process made its socket in its own), nor the order of the protocol
// versions (go-plugin lists them in map order).
func (p *Proc) Differs(env []string) string {
	a, b := envMap(p.env), envMap(env)
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if k == "PLUGIN_UNIX_SOCKET_DIR" {
			continue
		}
		va, oka := a[k]
		vb, okb := b[k]
		if k == "PLUGIN_PROTOCOL_VERSIONS" {
			va, vb = sortedList(va), sortedList(vb)
		}
		if oka != okb || va != vb {
			return k
		}
	}
	return ""
}

// envMap reads an environment list as exec does: the last of duplicates
// wins.
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func sortedList(s string) string {
	parts := strings.Split(s, ",")
	slices.Sort(parts)
	return strings.Join(parts, ",")
}
