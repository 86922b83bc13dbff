//go:build !linux

package registrytest

import "os/exec"

func setPdeathsig(*exec.Cmd) {}
