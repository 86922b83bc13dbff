package atomicfile

import (
	"os"
	"strconv"
	"strings"
	"sync"
)

// umask is the process's file mode creation mask, read from
// /proc/self/status (setting it to read it, as umask(2) requires, would race
// with other goroutines creating files); 022 where that is not available.
var umask = sync.OnceValue(func() os.FileMode {
	b, err := os.ReadFile("/proc/self/status")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return os.FileMode(m)
				}
			}
		}
	}
	return 0o022
})

// FileMode is the mode of a new file made visible: Perm less the umask, as
// a file created by open(2) would have (skopeo's files do).
func FileMode() os.FileMode { return Perm &^ umask() }

// ModeFor is the mode of a file replacing path: that of the file there
// already (replacing an archive does not widen who may read it), else
// FileMode.
func ModeFor(path string) os.FileMode {
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		return fi.Mode().Perm()
	}
	return FileMode()
}

// DirModeFor is the mode of a directory replacing path: that of the
// directory there already, else 0755 less the umask.
func DirModeFor(path string) os.FileMode {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fi.Mode().Perm()
	}
	return 0o755 &^ umask()
}
