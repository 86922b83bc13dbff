package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"oras.land/oras-go/v2/errdef"
	orasregistry "oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/stevedore-oci/stevedore/core"
)

// LoginOptions says where and how to log in.
type LoginOptions struct {
	// Registry as typed: "docker.io", "r.example.com:5000", "quay.io/team".
	Registry string
	Credential
	// AuthFile is the file to write ("" = DefaultAuthFile()).
	AuthFile string
	// Insecure skips certificate verification and allows plain HTTP (like
	// --tls-verify=false).
	Insecure bool
	// CertDir holds CA certificates (*.crt) and client pairs (*.cert,
	// *.key); "" reads /etc/containers/certs.d/HOST and
	// /etc/docker/certs.d/HOST.
	CertDir string
	// UserAgent for the check ("" = "stevedore").
	UserAgent string
}

// Login checks the credentials against the registry (GET /v2/, answering
// its basic or bearer challenge) and, when they are accepted, stores them.
// It returns the file written.
func Login(ctx context.Context, o LoginOptions) (string, error) {
	key, host, err := NormalizeRegistry(o.Registry)
	if err != nil {
		return "", err
	}
	if o.Username == "" && o.IdentityToken == "" {
		return "", fmt.Errorf("login to %s: a username is required: %w", key, core.ErrInvalid)
	}
	if o.Username != "" && o.Password == "" {
		return "", fmt.Errorf("login to %s: a password is required: %w", key, core.ErrInvalid)
	}
	if strings.Contains(o.Username, ":") {
		// The auth file keeps base64(USER:PASSWORD), read back split at
		// the first colon: the saved login would be another user's.
		return "", fmt.Errorf("login to %s: user name %q contains ':', which basic auth cannot carry: %w", key, o.Username, core.ErrInvalid)
	}
	if err := Verify(ctx, host, o); err != nil {
		return "", err
	}
	path := o.AuthFile
	if path == "" {
		path = DefaultAuthFile()
	}
	if err := Store(ctx, path, key, o.Credential); err != nil {
		return "", err
	}
	return path, nil
}

// Verify asks host whether it accepts o's credentials.
func Verify(ctx context.Context, host string, o LoginOptions) error {
	conf, err := tlsConfig(host, o.CertDir, o.Insecure)
	if err != nil {
		return err
	}
	base := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
		TLSClientConfig:     conf,
		TLSHandshakeTimeout: 15 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	defer base.CloseIdleConnections()
	ua := o.UserAgent
	if ua == "" {
		ua = "stevedore"
	}
	cred := orasauth.Credential{Username: o.Username, Password: o.Password, RefreshToken: o.IdentityToken}
	client := &orasauth.Client{
		Client:     &http.Client{Transport: base, Timeout: time.Minute},
		Header:     http.Header{"User-Agent": {ua}},
		Credential: orasauth.StaticCredential(host, cred),
		ClientID:   "stevedore",
	}
	ping := func(plain bool) error {
		reg := &remote.Registry{RepositoryOptions: remote.RepositoryOptions{
			Client:    client,
			Reference: orasregistry.Reference{Registry: host},
			PlainHTTP: plain,
		}}
		return reg.Ping(ctx)
	}
	scheme := "https"
	err = ping(false)
	if err != nil && o.Insecure && isTransportError(err) {
		scheme = "http"
		err = ping(true)
	}
	if err == nil {
		return nil
	}
	var er *errcode.ErrorResponse
	switch {
	case errors.As(err, &er) && (er.StatusCode == http.StatusUnauthorized || er.StatusCode == http.StatusForbidden):
		return fmt.Errorf("login to %s as %s: the registry refused the credentials: %w", host, o.Username, core.ErrUnauthorized)
	case errors.Is(err, errdef.ErrNotFound):
		return fmt.Errorf("login to %s: no registry API at %s://%s/v2/: %w", host, scheme, host, core.ErrNotFound)
	case errors.Is(err, orasauth.ErrBasicCredentialNotFound):
		return fmt.Errorf("login to %s: the registry asks for basic auth and no credentials were given: %w", host, core.ErrUnauthorized)
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return fmt.Errorf("login to %s: the registry's certificate is not trusted (add its CA with --cert-dir or /etc/containers/certs.d/%s/ca.crt, or use --tls-verify=false): %w", host, host, core.ErrInvalid)
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return fmt.Errorf("login to %s: the registry speaks plain HTTP: use --tls-verify=false: %w", host, core.ErrInvalid)
	}
	return fmt.Errorf("login to %s: %s: %w", host, strings.Join(strings.Fields(err.Error()), " "), core.ErrUnavailable)
}

func isTransportError(err error) bool {
	var er *errcode.ErrorResponse
	return !errors.As(err, &er) && !errors.Is(err, errdef.ErrNotFound) && !errors.Is(err, context.Canceled)
}

// Logout removes key's credentials from the file at path ("" =
// DefaultAuthFile()). It fails with ErrNotFound when there were none.
func Logout(ctx context.Context, registry, path string) (string, error) {
	key, _, err := NormalizeRegistry(registry)
	if err != nil {
		return "", err
	}
	if path == "" {
		path = DefaultAuthFile()
	}
	removed, err := Remove(ctx, path, key)
	if err != nil {
		return path, err
	}
	if !removed {
		return path, fmt.Errorf("not logged in to %s (no entry in %s): %w", key, path, core.ErrNotFound)
	}
	return path, nil
}

// tlsConfig loads CA certificates and client certificates from certDir, or
// from the certs.d directories of host.
func tlsConfig(host, certDir string, insecure bool) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure}
	dirs := []string{certDir}
	if certDir == "" {
		dirs = []string{filepath.Join("/etc/containers/certs.d", host), filepath.Join("/etc/docker/certs.d", host)}
	}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("certificate directory %s: %w", dir, err)
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			switch {
			case strings.HasSuffix(e.Name(), ".crt"):
				pem, err := os.ReadFile(p)
				if err != nil {
					return nil, err
				}
				if conf.RootCAs == nil {
					if conf.RootCAs, err = x509.SystemCertPool(); err != nil || conf.RootCAs == nil {
						conf.RootCAs = x509.NewCertPool()
					}
				}
				if !conf.RootCAs.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("CA certificate %s holds no PEM certificate: %w", p, core.ErrInvalid)
				}
			case strings.HasSuffix(e.Name(), ".cert"):
				pair, err := tls.LoadX509KeyPair(p, strings.TrimSuffix(p, ".cert")+".key")
				if err != nil {
					return nil, fmt.Errorf("client certificate %s: %v: %w", p, err, core.ErrInvalid)
				}
				conf.Certificates = append(conf.Certificates, pair)
			}
		}
	}
	return conf, nil
}
