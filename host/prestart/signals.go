package prestart

import (
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Between Start and the moment the program handles SIGINT and SIGTERM
// itself (SignalsHandled), either would end it with the default action:
// the processes started here die of their parent-death signal, but their
// socket directory would stay behind, which a program that starts no
// plugin before it handles signals never leaves. So Start watches them
// until then: one that comes kills the processes, removes the directory,
// and ends the program with the signal's default action after all.

var (
	handled bool           // SignalsHandled was called
	watched chan os.Signal // the signals' channel, registered since Start; nil: no watch
	stopped chan struct{}  // closed by SignalsHandled
	exited  chan struct{}  // closed when the watch has ended
)

// watchSignalsLocked starts the watch, once; mu is held.
func watchSignalsLocked() {
	if watched != nil || handled {
		return
	}
	var watch []os.Signal
	for _, s := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		if !signal.Ignored(s) {
			watch = append(watch, s)
		}
	}
	if len(watch) == 0 {
		return
	}
	c := make(chan os.Signal, 2)
	signal.Notify(c, watch...)
	watched = c
	stopped, exited = make(chan struct{}), make(chan struct{})
	go func() {
		var s os.Signal
		select {
		case s = <-c:
		case <-stopped:
			close(exited)
			return
		}
		mu.Lock()
		if handled {
			// SignalsHandled came first: the signal is the program's,
			// which reads this channel from now on.
			mu.Unlock()
			select {
			case c <- s:
			default: // two are waiting: a third adds nothing
			}
			close(exited)
			return
		}
		n, _ := s.(syscall.Signal)
		for _, proc := range procs {
			proc.Kill()
		}
		if dir != "" {
			os.RemoveAll(dir)
			dir = ""
		}
		signal.Reset(s)
		_ = syscall.Kill(os.Getpid(), n)
		time.Sleep(time.Second)
		os.Exit(128 + int(n))
	}()
}

// SignalsHandled ends the watch and returns the channel on which SIGINT
// and SIGTERM have been delivered since Start (a new one, registered for
// nothing, when Start watched none): the program registers it with
// signal.Notify for what it handles and reads it from then on, including a
// signal that came before and was not acted on. The same channel stays
// registered throughout, so no signal falls between the two watches. The
// program calls Release (or Abort) when a signal ends it.
func SignalsHandled() chan os.Signal {
	mu.Lock()
	handled = true
	c := watched
	mu.Unlock()
	if c == nil {
		return make(chan os.Signal, 2)
	}
	close(stopped)
	<-exited
	return c
}
