package host

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strconv"

	"github.com/hashicorp/go-plugin/runner"

	"github.com/stevedore-oci/stevedore/host/prestart"
)

// adopted is go-plugin's runner for a plugin process started ahead of the
// host (package prestart): go-plugin reads its handshake from the process's
// stdout and relays its stderr as for a process it started itself.
type adopted struct{ p *prestart.Proc }

var _ runner.Runner = adopted{}

func (a adopted) Start(context.Context) error { return nil } // started already

func (a adopted) Diagnose(context.Context) string {
	return "the plugin process was started ahead of the host (set STEVEDORE_PRESTART=off to have the host start it)"
}

func (a adopted) Stdout() io.ReadCloser { return a.p.Stdout }
func (a adopted) Stderr() io.ReadCloser { return a.p.Stderr }
func (a adopted) Name() string          { return a.p.Path }
func (a adopted) ID() string            { return strconv.Itoa(a.p.Process.Pid) }

// Wait waits for the process, then closes the read ends of its pipes (go-plugin
// has read them to their end before it waits), as exec.Cmd's Wait does.
func (a adopted) Wait(context.Context) error {
	state, err := a.p.Process.Wait()
	a.p.Stdout.Close()
	a.p.Stderr.Close()
	if err != nil {
		return err
	}
	if !state.Success() {
		return &exec.ExitError{ProcessState: state}
	}
	return nil
}

func (a adopted) Kill(context.Context) error {
	if err := a.p.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (a adopted) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (a adopted) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}
