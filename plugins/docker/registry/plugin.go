package registry

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/reference"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/ref"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// TransportName is the transport this package serves.
const TransportName = "docker"

// Defaults of the tunables in Plugin.
const (
	DefaultMonolithicMax = 64 << 20
	DefaultChunkSize     = 64 << 20
	DefaultReplayWindow  = 4 << 20
	DefaultMaxRetries    = 4
	DefaultTokenRenewAge = 50 * time.Second
)

// Plugin serves the docker transport. The zero value is not usable; use New.
type Plugin struct {
	// MonolithicMax is the largest blob uploaded in one PUT; larger blobs
	// are sent in ChunkSize PATCH requests that can resume.
	MonolithicMax int64
	// ChunkSize is the most one upload PATCH carries (requests stay under
	// the body limits of proxies in front of registries).
	ChunkSize int64
	// ReplayWindow is how many of the last bytes sent of a chunked upload
	// are kept in memory to resume it after a broken PATCH.
	ReplayWindow int64
	// MaxRetries bounds the retries of one request, and the resumptions of
	// one blob transfer.
	MaxRetries int
	// RetryBase is the first backoff; it doubles per attempt up to RetryMax.
	RetryBase, RetryMax time.Duration
	// RetryAfterMax is the longest Retry-After waited for; a longer one
	// fails the request at once, with the wait asked for in the error
	// (retries of one request stay within the host's 60 s inactivity and
	// 2 min call timeouts).
	RetryAfterMax time.Duration
	// TokenRenewAge is the age past which a chunked upload renews its
	// bearer token before the next chunk (0: never). Tokens live 60 s when
	// the registry does not say (distribution's token spec), 300 s on
	// Docker Hub.
	TokenRenewAge time.Duration
	// TagPageSize asks for tag lists in pages of this size (0: the
	// registry's default).
	TagPageSize int
	// CatalogPageSize asks for the catalog in pages of this size (0:
	// 1000, the most distribution answers with).
	CatalogPageSize int

	// RegistriesConf is a registries.conf to read alone, without drop-ins
	// ("": as skopeo does, $CONTAINERS_REGISTRIES_CONF or else the user's
	// or the system's file, with the drop-in directories).
	RegistriesConf string

	rings sync.Pool // replay windows of ReplayWindow bytes, reused

	regOnce sync.Once
	regConf *registriesConf
	regErr  error

	connMu sync.Mutex
	conns  map[connKey]*conn // one HTTP transport per registry and TLS setting
}

// connKey identifies what endpoints may share: the host dialled and the TLS
// settings (credentials differ per endpoint and live in its auth client).
type connKey struct {
	host      string
	tlsVerify bool
	certDir   string
}

// conn is a keep-alive connection pool to one registry, shared by every
// endpoint of the plugin process (a sync opens two per repository), and the
// scheme found for it when TLS verification is off.
type conn struct {
	base *http.Transport
	// rt is base behind the first-request gate.
	rt http.RoundTripper

	mu     sync.Mutex
	scheme string

	// chunkCap is the most one upload PATCH may carry, learned from a
	// registry that refused a larger one (0: none learned).
	chunkCap atomic.Int64
}

func (p *Plugin) getRing(n int64) []byte {
	if n == p.ReplayWindow {
		if b, ok := p.rings.Get().(*[]byte); ok && int64(len(*b)) == n {
			return *b
		}
	}
	return make([]byte, n)
}

func (p *Plugin) putRing(b []byte) {
	if int64(len(b)) == p.ReplayWindow {
		p.rings.Put(&b)
	}
}

// New returns a Plugin with default settings.
func New() *Plugin {
	return &Plugin{
		MonolithicMax: DefaultMonolithicMax,
		ChunkSize:     DefaultChunkSize,
		ReplayWindow:  DefaultReplayWindow,
		MaxRetries:    DefaultMaxRetries,
		RetryBase:     250 * time.Millisecond,
		RetryMax:      5 * time.Second,
		RetryAfterMax: 10 * time.Second,
		TokenRenewAge: DefaultTokenRenewAge,
	}
}

// Transports implements pluginapi.Plugin.
func (p *Plugin) Transports() []string { return []string{TransportName} }

// options are the parsed OpenRequest.Options.
type options struct {
	username, password string
	registryToken      string
	noCreds            bool
	authfile           string
	tlsVerify          bool
	tlsVerifySet       bool // given as an option: registries.conf's insecure does not apply
	certDir            string
	userAgent          string
	flagPrefix         string // of the flags hints name: "src-" for --src-tls-verify
}

func parseOptions(m map[string]string) (options, error) {
	o := options{tlsVerify: true, userAgent: "stevedore"}
	if c, ok := m["creds"]; ok && c != "" {
		u, p, found := strings.Cut(c, ":")
		if !found || u == "" {
			return o, fmt.Errorf("option creds must be USER:PASSWORD: %w", core.ErrInvalid)
		}
		o.username, o.password = u, p
	}
	o.registryToken = m["registry-token"]
	if v, ok := m["no-creds"]; ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return o, fmt.Errorf("option no-creds=%q is not a boolean: %w", v, core.ErrInvalid)
		}
		o.noCreds = b
	}
	if o.noCreds && (o.username != "" || o.registryToken != "") {
		return o, fmt.Errorf("option no-creds conflicts with creds and registry-token: %w", core.ErrInvalid)
	}
	if o.username != "" && o.registryToken != "" {
		return o, fmt.Errorf("options creds and registry-token are exclusive: %w", core.ErrInvalid)
	}
	o.authfile = m["authfile"]
	if v, ok := m["tls-verify"]; ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return o, fmt.Errorf("option tls-verify=%q is not a boolean: %w", v, core.ErrInvalid)
		}
		o.tlsVerify, o.tlsVerifySet = b, true
	}
	o.certDir = m["cert-dir"]
	if ua := m["user-agent"]; ua != "" {
		o.userAgent = ua
	}
	o.flagPrefix = m["flag-prefix"]
	return o, nil
}

// SplitLocation splits a normalised "host/repository" location into the
// registry name (as in references), the host to dial (registry-1.docker.io
// for docker.io) and the repository.
func SplitLocation(location string) (name, host, repo string, err error) {
	named, err := reference.ParseNamed(location)
	if err != nil {
		return "", "", "", fmt.Errorf("docker location %q is not a normalised host/repository: %v: %w", location, err, core.ErrInvalid)
	}
	if _, ok := named.(reference.Tagged); ok {
		return "", "", "", fmt.Errorf("docker location %q must not carry a tag: %w", location, core.ErrInvalid)
	}
	if _, ok := named.(reference.Digested); ok {
		return "", "", "", fmt.Errorf("docker location %q must not carry a digest: %w", location, core.ErrInvalid)
	}
	name, repo = reference.Domain(named), reference.Path(named)
	return name, wireHost(name), repo, nil
}

// wireHost maps a registry name to the host that serves its API.
func wireHost(name string) string {
	if name == "docker.io" || name == "index.docker.io" {
		return "registry-1.docker.io"
	}
	return name
}

// Open implements pluginapi.Plugin.
func (p *Plugin) Open(ctx context.Context, req pluginapi.OpenRequest) (pluginapi.Endpoint, error) {
	if req.Transport != TransportName {
		return nil, fmt.Errorf("docker plugin cannot open transport %q: %w", req.Transport, core.ErrUnsupported)
	}
	opts, err := parseOptions(req.Options)
	if err != nil {
		return nil, fmt.Errorf("docker://%s: %w", req.Location, err)
	}
	conf, err := p.registries()
	if err != nil {
		return nil, fmt.Errorf("docker://%s: %w", req.Location, err)
	}
	if name, ok, err := registryRoot(req.Location); ok {
		// A registry alone: only its catalog can be read.
		if err != nil {
			return nil, err
		}
		opts = conf.insecure(name, opts)
		if req.Mode != pluginapi.ModeRead {
			return nil, fmt.Errorf("docker://%s names a registry, not a repository: it can only be listed: %w", req.Location, core.ErrInvalid)
		}
		e, err := newEndpoint(p, name, name, wireHost(name), "", req.Mode, opts)
		if err != nil {
			return nil, err
		}
		return &Catalog{e}, nil
	}
	name, host, repo, err := SplitLocation(req.Location)
	if err != nil {
		// A prefix that is no repository name (docker.io/library, which
		// would be docker.io/library/library): listable, nothing else.
		if pfx, perr := ref.DockerPrefix(req.Location); perr == nil && pfx == req.Location && req.Mode == pluginapi.ModeRead {
			name, path, _ := strings.Cut(pfx, "/")
			e, err := newEndpoint(p, pfx, name, wireHost(name), path, req.Mode, conf.insecure(pfx, opts))
			if err != nil {
				return nil, err
			}
			return &Catalog{e}, nil
		}
		return nil, err
	}
	entry, _ := conf.match(req.Location)
	location := req.Location
	primary := name // the registry the reference names
	if req.Mode == pluginapi.ModeRead {
		if entry.Blocked {
			return nil, fmt.Errorf("docker://%s: pulls from %s are blocked by %s: %w", req.Location, entry.Prefix, entry.file, core.ErrDenied)
		}
		// Rewriting and mirrors apply to reads, as in containers/image.
		if location = entry.rewrite(entry.Location, req.Location); location != req.Location {
			if name, host, repo, err = SplitLocation(location); err != nil {
				return nil, fmt.Errorf("docker://%s: location %s of %s: %w", req.Location, entry.Location, entry.file, err)
			}
		}
	}
	e, err := newEndpoint(p, location, name, host, repo, req.Mode, withInsecure(credsFor(opts, primary, name), entry.Insecure))
	if err != nil {
		return nil, err
	}
	if req.Mode == pluginapi.ModeRead {
		for _, m := range entry.Mirrors {
			mloc := entry.rewrite(m.Location, req.Location)
			mname, mhost, mrepo, err := SplitLocation(mloc)
			if err != nil {
				return nil, fmt.Errorf("docker://%s: mirror %s of %s: %w", req.Location, m.Location, entry.file, err)
			}
			me, err := newEndpoint(p, mloc, mname, mhost, mrepo, req.Mode, withInsecure(credsFor(opts, primary, mname), m.Insecure))
			if err != nil {
				return nil, err
			}
			byTag, byDigest := entry.mirrorUse(m)
			e.mirrors = append(e.mirrors, mirror{ep: me, byTag: byTag, byDigest: byDigest})
		}
	}
	switch req.Mode {
	case pluginapi.ModeRead:
		return &Reader{e}, nil
	case pluginapi.ModeWrite:
		return &Writer{e}, nil
	}
	return nil, fmt.Errorf("docker://%s: unknown mode %d: %w", req.Location, req.Mode, core.ErrInvalid)
}

// Reader is an endpoint opened for reading.
type Reader struct{ *endpoint }

// Writer is an endpoint opened for writing; it can also read what the
// repository holds.
type Writer struct{ *endpoint }

var (
	_ pluginapi.Source           = (*Reader)(nil)
	_ pluginapi.ManifestResolver = (*Reader)(nil)
	_ pluginapi.TagLister        = (*Reader)(nil)
	_ pluginapi.ReferrerLister   = (*Reader)(nil)
	_ pluginapi.Destination      = (*Writer)(nil)
	_ pluginapi.Source           = (*Writer)(nil)
	_ pluginapi.Mounter          = (*Writer)(nil)
	_ pluginapi.FilePutter       = (*Writer)(nil)
	_ pluginapi.BlobCopier       = (*Writer)(nil)
	_ pluginapi.BlobFileGetter   = (*Reader)(nil)
	_ pluginapi.Deleter          = (*Writer)(nil)
	_ pluginapi.TagLister        = (*Writer)(nil)
)

// credsFor returns opts for an endpoint on registry name reached for a
// reference to registry primary: credentials given for the reference
// (creds, registry-token) go to its own registry only, never to a mirror
// or a rewritten location elsewhere (containers/image drops them too);
// those use the auth files, keyed by their own host.
func credsFor(opts options, primary, name string) options {
	if name != primary {
		opts.username, opts.password, opts.registryToken = "", "", ""
	}
	return opts
}
