package pluginapi

import (
	"context"
	"net"
	"time"
)

type unreadWatchKey struct{}

// WithUnreadWatch asks a remote PutBlob to report, once the host has sent
// the last byte of the blob, how many of the bytes sent the plugin has not
// read yet: f gets that count every few milliseconds until it is 0 or the
// call ends. A data-plane socket buffers megabytes, so the end of the
// source is not the end of the plugin's reading; a caller timing the
// plugin's progress (the host's inactivity watchdog) goes on timing it
// while the count falls. Not called on the gRPC-stream fallback, whose
// sends wait for the plugin.
func WithUnreadWatch(ctx context.Context, f func(unread int)) context.Context {
	return context.WithValue(ctx, unreadWatchKey{}, f)
}

func unreadWatch(ctx context.Context) func(int) {
	f, _ := ctx.Value(unreadWatchKey{}).(func(int))
	return f
}

// unreadPoll is how often the unread count is read.
const unreadPoll = 10 * time.Millisecond

// watchUnread reports c's unread bytes to f until they are 0, stop is
// closed, or the socket cannot be asked (closed).
func watchUnread(c *net.UnixConn, f func(int), stop <-chan struct{}) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	t := time.NewTicker(unreadPoll)
	defer t.Stop()
	for {
		n, ierr := 0, error(nil)
		if cerr := rc.Control(func(fd uintptr) { n, ierr = unsentBytes(int(fd)) }); cerr != nil || ierr != nil {
			return
		}
		f(n)
		if n == 0 {
			return
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}
