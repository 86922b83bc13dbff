package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/server"
)

// defaultRegistryRoot is where `stevedore serve` keeps images unless --root
// says otherwise.
func defaultRegistryRoot() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "stevedore", "registry")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "stevedore", "registry")
	}
	return "stevedore-registry"
}

func newServeCmd() *cobra.Command {
	var (
		opts        server.Options
		ro          server.RunOptions
		tokenKey    string
		accessLog   bool
		shutdownTTL time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve [--root DIR] [--addr 127.0.0.1:5000]",
		Short: "Run an OCI distribution registry backed by one OCI layout per repository",
		Long: `serve runs an OCI distribution-spec v1.1 registry. Each repository NAME is an OCI
image layout in ROOT/NAME (readable with oci:ROOT/NAME:TAG); blobs are stored once
in ROOT/.blobs and hard-linked into every repository that has them.

Without --htpasswd, anonymous pulls and pushes are allowed on a loopback address;
on any other address anonymous writes are refused unless --allow-anonymous-write.
SIGINT or SIGTERM stops accepting connections and finishes in-flight requests.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := hclog.Info
			if !accessLog {
				level = hclog.Warn
			}
			opts.Logger = hclog.New(&hclog.LoggerOptions{Name: "registry", Level: level, Output: os.Stderr})
			// Values the server would replace by its defaults, or ignore,
			// are refused rather than taken silently.
			fs := cmd.Flags()
			for _, name := range []string{"token-key-file", "token-ttl"} {
				if fs.Changed(name) && !opts.Token {
					return fmt.Errorf("--%s is for the token endpoint: give --token too: %w", name, core.ErrInvalid)
				}
			}
			for name, d := range map[string]time.Duration{"token-ttl": opts.TokenTTL, "upload-ttl": opts.UploadTTL, "shutdown-timeout": shutdownTTL} {
				if d <= 0 {
					return fmt.Errorf("--%s %s: want a positive duration: %w", name, d, core.ErrInvalid)
				}
			}
			if opts.MaxUploadSize < 0 {
				return fmt.Errorf("--max-upload-size %d: want 0 (no limit) or more: %w", opts.MaxUploadSize, core.ErrInvalid)
			}
			if tokenKey != "" {
				b, err := os.ReadFile(tokenKey)
				if err != nil {
					return fmt.Errorf("token key %s: %w", tokenKey, err)
				}
				if len(b) < 16 {
					// An empty file made the server pick a random key, so
					// tokens did not outlive the process; a short one failed
					// without naming the file.
					return fmt.Errorf("token key %s: %d bytes, want at least 16: %w", tokenKey, len(b), core.ErrInvalid)
				}
				opts.TokenKey = b
			}
			ro.ShutdownTimeout = shutdownTTL
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return server.Run(ctx, opts, ro)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Root, "root", defaultRegistryRoot(), "storage directory: one OCI layout per repository")
	f.StringVar(&ro.Addr, "addr", "127.0.0.1:5000", "address to listen on (host:port)")
	f.StringVar(&ro.TLSCertFile, "tls-cert", "", "serve HTTPS with this certificate (PEM)")
	f.StringVar(&ro.TLSKeyFile, "tls-key", "", "private key for --tls-cert (PEM)")
	f.BoolVar(&ro.AllowAnonymousWrite, "allow-anonymous-write", false, "allow anonymous push and delete on a non-loopback address")
	f.StringVar(&opts.HtpasswdFile, "htpasswd", "", "require basic auth against this htpasswd file (bcrypt entries)")
	f.BoolVar(&opts.Token, "token", false, "serve a bearer token endpoint at /token and challenge clients with Bearer (needs --htpasswd)")
	f.StringVar(&tokenKey, "token-key-file", "", "file whose bytes sign tokens (HS256; default: a random key per process)")
	f.DurationVar(&opts.TokenTTL, "token-ttl", 5*time.Minute, "lifetime of issued tokens")
	f.StringVar(&opts.PolicyFile, "policy", "", "access policy file (YAML or JSON: rules of users, repositories, actions)")
	f.BoolVar(&opts.ReadOnly, "read-only", false, "refuse every write")
	f.Int64Var(&opts.MaxUploadSize, "max-upload-size", 0, "largest blob accepted, in bytes (0 = unlimited)")
	f.DurationVar(&opts.UploadTTL, "upload-ttl", time.Hour, "discard upload sessions idle for this long")
	f.BoolVar(&opts.AllowSparseManifests, "allow-sparse", false, "accept manifests whose blobs or child manifests were not pushed")
	f.BoolVar(&accessLog, "access-log", true, "log every request (method, repo, status, bytes, duration) to stderr")
	f.DurationVar(&shutdownTTL, "shutdown-timeout", 30*time.Second, "how long to wait for in-flight requests on SIGINT/SIGTERM")
	return cmd
}
