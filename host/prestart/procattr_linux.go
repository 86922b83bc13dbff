package prestart

import "syscall"

// ProcAttr puts a plugin in its own process group (Ctrl-C reaches the
// host alone) and has the kernel kill it if the host dies.
func ProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
