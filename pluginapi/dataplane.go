package pluginapi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/stevedore-oci/stevedore/core"
	transportv1 "github.com/stevedore-oci/stevedore/pluginapi/proto/v1"
)

// The blob data plane: gRPC carries control, blob bytes go over a unix socket
// the host listens on. Each transfer is admitted by a one-time token the host
// issues and sends in the RPC; the plugin dials, writes the token, then the
// bytes flow. The socket's directory is private (0700), so only the host's
// user can dial it; the token ties a connection to exactly one call.

const (
	// tokenLen is the length of a data-plane token in bytes.
	tokenLen = 32
	// blobChunkSize is the copy buffer of the data plane and the message
	// size of the gRPC stream fallback.
	blobChunkSize = 1 << 20
	// dataPlaneSocketBuffer is the send buffer both ends ask for on
	// data-plane sockets (the kernel caps it at net.core.wmem_max): with a
	// few MiB in flight the sending and the reading process each move
	// several chunks per wake-up instead of taking turns on ~200 KiB. What
	// the host sends a plugin may then sit unread in the socket after the
	// source ended: WithUnreadWatch lets the host's watchdog see whether
	// the plugin still reads it.
	dataPlaneSocketBuffer = 4 << 20
	// tokenReadTimeout bounds how long a dialer may take to present its token.
	tokenReadTimeout = 10 * time.Second
	// DefaultTokenTTL is how long an issued token stays valid when the call
	// that issued it has not ended first.
	DefaultTokenTTL = 5 * time.Minute
	// EnvDataPlane selects the blob path: "grpc" forces the gRPC stream
	// fallback (read by Dispense in the host and by Serve in a plugin).
	EnvDataPlane = "STEVEDORE_DATAPLANE"
)

var chunkPool = sync.Pool{New: func() any { b := make([]byte, blobChunkSize); return &b }}

// DataPlane is the host end of the blob data plane: one unix socket in a
// private temporary directory. One DataPlane may serve many plugins and
// concurrent transfers. Close removes the socket and its directory.
type DataPlane struct {
	// TokenTTL bounds the life of an unused token; zero means DefaultTokenTTL.
	// Set it before the first transfer.
	TokenTTL time.Duration

	dir  string
	path string
	ln   *net.UnixListener

	mu       sync.Mutex
	tickets  map[string]*ticket
	admiting map[net.Conn]struct{}
	closed   bool
	wg       sync.WaitGroup
}

// ticket is one issued token waiting for its connection.
type ticket struct {
	token   []byte
	expires time.Time
	conn    chan net.Conn // capacity 1; sent to under DataPlane.mu
}

// NewDataPlane listens on a fresh socket in a private directory
// (MkdirSockets: under $XDG_RUNTIME_DIR, else the temporary directory).
func NewDataPlane() (*DataPlane, error) {
	d := NewLazyDataPlane()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.listenLocked(); err != nil {
		return nil, err
	}
	return d, nil
}

// NewLazyDataPlane returns a data plane that makes its socket on the first
// transfer: a command that moves no blob (inspect, an up-to-date copy)
// makes no directory and no socket.
func NewLazyDataPlane() *DataPlane {
	return &DataPlane{tickets: map[string]*ticket{}, admiting: map[net.Conn]struct{}{}}
}

// listenLocked makes the socket if it is not there yet.
func (d *DataPlane) listenLocked() error {
	if d.ln != nil {
		return nil
	}
	if d.closed {
		return fmt.Errorf("data plane is closed: %w", core.ErrUnavailable)
	}
	dir, err := MkdirSockets("stvd-")
	if err != nil {
		return fmt.Errorf("data plane: %w", err)
	}
	path := filepath.Join(dir, "d.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("data plane: %w", err)
	}
	d.dir, d.path, d.ln = dir, path, ln
	d.wg.Add(1)
	go d.acceptLoop(ln)
	return nil
}

// Path is the socket path plugins dial ("" for a lazy data plane before
// its first transfer).
func (d *DataPlane) Path() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.path
}

// RemoveDir removes the socket directory at once, without Close's wait for
// the data plane's goroutines: for a process about to exit (Host.Abort).
func (d *DataPlane) RemoveDir() {
	d.mu.Lock()
	dir := d.dir
	d.mu.Unlock()
	if dir != "" {
		os.RemoveAll(dir)
	}
}

// Close stops accepting, drops every pending token and connection, waits for
// the data plane's goroutines and removes the socket directory.
func (d *DataPlane) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	for c := range d.admiting {
		c.Close()
	}
	for k, t := range d.tickets {
		delete(d.tickets, k)
		drainTicket(t)
	}
	ln, dir := d.ln, d.dir
	d.mu.Unlock()
	if ln == nil { // lazy, never used
		return nil
	}
	err := ln.Close()
	d.wg.Wait()
	if rerr := os.RemoveAll(dir); err == nil {
		err = rerr
	}
	return err
}

func (d *DataPlane) acceptLoop(ln *net.UnixListener) {
	defer d.wg.Done()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or similar: back off instead of spinning.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		d.mu.Lock()
		if d.closed {
			d.mu.Unlock()
			c.Close()
			return
		}
		d.admiting[c] = struct{}{}
		d.wg.Add(1)
		d.mu.Unlock()
		go d.admit(c)
	}
}

// admit reads a connection's token and hands the connection to the call that
// issued it. Unknown, reused and expired tokens get the connection closed.
func (d *DataPlane) admit(c *net.UnixConn) {
	defer d.wg.Done()
	tok := make([]byte, tokenLen)
	_ = c.SetWriteBuffer(dataPlaneSocketBuffer)
	_ = c.SetReadDeadline(time.Now().Add(tokenReadTimeout))
	_, err := io.ReadFull(c, tok)
	_ = c.SetReadDeadline(time.Time{})

	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.admiting, c)
	var t *ticket
	if err == nil && !d.closed {
		t = d.tickets[string(tok)]
		delete(d.tickets, string(tok)) // single use, whatever happens next
	}
	if t == nil || time.Now().After(t.expires) {
		c.Close()
		return
	}
	t.conn <- c // never blocks: capacity 1 and the ticket is gone from the map
}

// issue registers a fresh token.
func (d *DataPlane) issue() (*ticket, error) {
	tok := make([]byte, tokenLen)
	if _, err := rand.Read(tok); err != nil {
		return nil, fmt.Errorf("data plane token: %w", err)
	}
	ttl := d.TokenTTL
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	t := &ticket{token: tok, expires: time.Now().Add(ttl), conn: make(chan net.Conn, 1)}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, fmt.Errorf("data plane %s is closed: %w", d.path, core.ErrUnavailable)
	}
	if err := d.listenLocked(); err != nil {
		return nil, err
	}
	d.tickets[string(tok)] = t
	return t, nil
}

// revoke invalidates a token; a connection already admitted for it but not
// taken by the caller is closed.
func (d *DataPlane) revoke(t *ticket) {
	d.mu.Lock()
	delete(d.tickets, string(t.token))
	d.mu.Unlock()
	drainTicket(t)
}

func drainTicket(t *ticket) {
	select {
	case c := <-t.conn:
		c.Close()
	default:
	}
}

// request describes the ticket for the RPC that carries it.
func (d *DataPlane) request(t *ticket) *transportv1.DataPlane {
	return &transportv1.DataPlane{SocketPath: d.path, Token: t.token}
}

// dialDataPlane is the plugin end: connect to the host's socket and present
// the token.
func dialDataPlane(ctx context.Context, dp *transportv1.DataPlane) (*net.UnixConn, error) {
	if dp.GetSocketPath() == "" || len(dp.GetToken()) < 16 {
		return nil, fmt.Errorf("data plane: missing socket path or token: %w", core.ErrInvalid)
	}
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "unix", dp.GetSocketPath())
	if err != nil {
		return nil, fmt.Errorf("data plane %s: %v: %w", dp.GetSocketPath(), err, core.ErrUnavailable)
	}
	uc := c.(*net.UnixConn)
	_ = uc.SetWriteBuffer(dataPlaneSocketBuffer)
	_ = uc.SetWriteDeadline(time.Now().Add(tokenReadTimeout))
	if _, err := uc.Write(dp.GetToken()); err != nil {
		uc.Close()
		return nil, fmt.Errorf("data plane %s: send token: %v: %w", dp.GetSocketPath(), err, core.ErrUnavailable)
	}
	_ = uc.SetWriteDeadline(time.Time{})
	return uc, nil
}
