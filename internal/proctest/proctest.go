// Package proctest reads the process table (/proc) for tests that check a
// plugin process is running, or that none is left behind.
package proctest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Proc is one process of the table.
type Proc struct {
	Pid, PPid int
	// State is the state letter of /proc/PID/stat: 'Z' for a zombie.
	State byte
	// Exe is the path of the executable ("" when it cannot be read).
	Exe string
}

// Zombie reports whether the process has exited but is not reaped yet.
func (p Proc) Zombie() bool { return p.State == 'Z' }

// List returns the processes whose stat can be read.
func List() []Proc {
	entries, _ := os.ReadDir("/proc")
	var out []Proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := read(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// Alive reports whether pid runs: it exists and is not a zombie (whoever
// inherited it may not reap it).
func Alive(pid int) bool {
	p, ok := read(pid)
	return ok && !p.Zombie()
}

func read(pid int) (Proc, bool) {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return Proc{}, false
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return Proc{}, false
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 2 || len(fields[0]) != 1 {
		return Proc{}, false
	}
	ppid, _ := strconv.Atoi(fields[1])
	exe, _ := os.Readlink(filepath.Join(dir, "exe"))
	return Proc{Pid: pid, PPid: ppid, State: fields[0][0], Exe: exe}, true
}
