package host

import "syscall"

// pluginProcAttr puts a plugin in its own process group (Ctrl-C reaches the
// host alone) and has the kernel kill it if the host dies.
func pluginProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
