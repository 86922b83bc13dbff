// Command stevedore copies, inspects, lists and deletes container images
// between registries, layouts and archives through transport plugins.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	// First, for its init: it starts the plugins the command line names.
	_ "github.com/stevedore-oci/stevedore/cmd/stevedore/internal/early"
	"github.com/stevedore-oci/stevedore/host/prestart"
)

func main() {
	os.Exit(run())
}

func run() int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first SIGINT or SIGTERM cancels the command, which stops cleanly
	// (plugins finish removing what they half wrote, a wedged one is given
	// up in seconds); a second one kills the plugins and exits at once. The
	// exit status says which signal (128 + its number, as shells report it).
	var got atomic.Value
	// Until now the package that started plugins ahead stopped them on a
	// signal (and removed their socket directory); from here on, this, on
	// the channel it watched (a signal it left to us waits there).
	sigs := prestart.SignalsHandled()
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		s, ok := <-sigs
		if !ok {
			return
		}
		got.Store(s)
		cancel()
		// A command driving plugins stops cleanly in seconds; one still
		// there after exitGrace is wedged (writing to a stderr nobody
		// reads, as a full pipe blocks) and is stopped as by a second
		// signal. (serve, which runs no plugin, drains its requests for
		// its own --shutdown-timeout.)
		if abortable.Load() != nil {
			time.AfterFunc(exitGrace, func() { abortAndExit(s, "") })
		}
		if s, ok = <-sigs; ok {
			abortAndExit(s, "stevedore: interrupted again: stopping the plugins now")
		}
	}()
	root := newRootCmd()
	err := root.ExecuteContext(ctx)
	closeHost()
	// The plugins started ahead that the host did not use.
	prestart.Release()
	if err == nil {
		return 0
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "stevedore: interrupted")
		s, _ := got.Load().(os.Signal)
		return exitStatus(s)
	}
	if !errorReported.Load() {
		fmt.Fprintln(os.Stderr, "stevedore: "+oneLine(err.Error()))
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// errorReported says the command's error was written already (as the last
// line of --progress=json), so main does not write it again.
var errorReported atomic.Bool

// exitGrace bounds a command's clean stop after SIGINT or SIGTERM.
const exitGrace = 10 * time.Second

// abortAndExit kills the plugins and exits with the status of signal s,
// saying msg if stderr takes it at once (a blocked stderr must not keep
// the process alive).
func abortAndExit(s os.Signal, msg string) {
	// Bounded too: killing the plugins must not wait on a blocked stderr
	// either (their parent-death signal ends them when the host exits).
	aborted := make(chan struct{})
	go func() {
		abortHost()
		prestart.Abort()
		close(aborted)
	}()
	select {
	case <-aborted:
	case <-time.After(3 * time.Second):
	}
	if msg != "" {
		said := make(chan struct{})
		go func() {
			fmt.Fprintln(os.Stderr, msg)
			close(said)
		}()
		select {
		case <-said:
		case <-time.After(100 * time.Millisecond):
		}
	}
	os.Exit(exitStatus(s))
}

// exitStatus is the status of a command a signal ended: 143 for SIGTERM,
// else 130 (SIGINT).
func exitStatus(s os.Signal) int {
	if s == syscall.SIGTERM {
		return 143
	}
	return 130
}

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
