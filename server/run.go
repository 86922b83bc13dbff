package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/stevedore-oci/stevedore/core"
)

// RunOptions configure Run.
type RunOptions struct {
	// Addr is host:port to listen on (default 127.0.0.1:5000).
	Addr string
	// TLSCertFile and TLSKeyFile enable HTTPS.
	TLSCertFile, TLSKeyFile string
	// AllowAnonymousWrite permits anonymous pushes on a non-loopback
	// address (they are always permitted on loopback when no auth is set).
	AllowAnonymousWrite bool
	// ShutdownTimeout bounds the wait for in-flight requests once ctx is
	// done (default 30s).
	ShutdownTimeout time.Duration
	// Ready, if set, is called with the bound address once listening.
	Ready func(net.Addr)
}

// IsLoopback reports whether a listen address only accepts local clients.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Run serves the registry on ro.Addr until ctx is done, then stops
// accepting connections and waits for in-flight requests.
func Run(ctx context.Context, opts Options, ro RunOptions) error {
	if ro.Addr == "" {
		ro.Addr = "127.0.0.1:5000"
	}
	if ro.ShutdownTimeout <= 0 {
		ro.ShutdownTimeout = 30 * time.Second
	}
	loop := IsLoopback(ro.Addr)
	opts.AnonymousWrite = loop || ro.AllowAnonymousWrite
	s, err := NewServer(opts)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: nil}
	useTLS := ro.TLSCertFile != "" || ro.TLSKeyFile != ""
	if useTLS {
		// Loaded before listening: ServeTLS loads them once serving, so a
		// missing key or a file that is not PEM was reported after "registry
		// listening", as "open : no such file or directory" or a
		// PEM error naming neither file.
		if ro.TLSCertFile == "" || ro.TLSKeyFile == "" {
			return fmt.Errorf("TLS needs both a certificate and its private key (--tls-cert and --tls-key): %w", core.ErrInvalid)
		}
		pair, err := tls.LoadX509KeyPair(ro.TLSCertFile, ro.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("TLS certificate %s, key %s: %v: %w", ro.TLSCertFile, ro.TLSKeyFile, err, core.ErrInvalid)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}}
	}
	ln, err := net.Listen("tcp", ro.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", ro.Addr, err)
	}
	if !loop && s.auth.open() {
		if ro.AllowAnonymousWrite {
			s.log.Warn("listening beyond loopback with anonymous push and delete allowed (--allow-anonymous-write); anyone who can reach this address can change the registry", "addr", ro.Addr)
		} else {
			s.log.Warn("listening beyond loopback without authentication: anonymous pulls are allowed, anonymous writes are refused (configure --htpasswd, or --allow-anonymous-write)", "addr", ro.Addr)
		}
	}
	if ro.Ready != nil {
		ro.Ready(ln.Addr())
	}
	s.log.Info("registry listening", "addr", ln.Addr().String(), "root", s.store.Root(), "tls", useTLS)
	errc := make(chan error, 1)
	go func() {
		if useTLS {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", ro.Addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ro.ShutdownTimeout)
	defer cancel()
	err = hs.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	s.log.Info("registry stopped")
	return nil
}
