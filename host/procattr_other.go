//go:build !linux

package host

import "syscall"

// pluginProcAttr puts a plugin in its own process group (Ctrl-C reaches the
// host alone). No parent-death signal here: pluginapi.Serve's watch of its
// parent ends a plugin whose host died.
func pluginProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
