//go:build !linux

package prestart

import (
	"os"
	"path/filepath"
)

// executable is the running program's file, symbolic links resolved (a
// stevedore installed as a link finds the plugins next to the real file).
func executable() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	return exe, nil
}
