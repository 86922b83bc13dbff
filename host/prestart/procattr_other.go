//go:build !linux

package prestart

import "syscall"

// ProcAttr puts a plugin in its own process group (Ctrl-C reaches the
// host alone). No parent-death signal here: pluginapi.Serve's watch of its
// parent ends a plugin whose host died.
func ProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
