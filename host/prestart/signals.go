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
	sigs    chan os.Signal // watched since Start, until SignalsHandled
	handled bool           // SignalsHandled was called
)

// watchSignalsLocked starts the watch, once; mu is held.
func watchSignalsLocked() {
	if sigs != nil || handled {
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
	c := make(chan os.Signal, 1)
	signal.Notify(c, watch...)
	sigs = c
	go func() {
		s, ok := <-c
		if !ok {
			return
		}
		n, _ := s.(syscall.Signal)
		mu.Lock()
		if handled {
			// It came before the program's own watch began (SignalsHandled
			// stops this one first): hand it on.
			mu.Unlock()
			_ = syscall.Kill(os.Getpid(), n)
			return
		}
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

// SignalsHandled tells the package that the program is about to handle
// SIGINT and SIGTERM itself, and calls Release (or Abort) when they end it:
// call it just before signal.Notify. A signal that came since Start and was
// not yet acted on is sent again, for the program's handler.
func SignalsHandled() {
	mu.Lock()
	defer mu.Unlock()
	handled = true
	if sigs != nil {
		signal.Stop(sigs)
		close(sigs)
		sigs = nil
	}
}
