package pluginapi

import "golang.org/x/sys/unix"

// unsentBytes is how many bytes a socket's send queue still holds.
func unsentBytes(fd int) (int, error) { return unix.IoctlGetInt(fd, unix.SIOCOUTQ) }
