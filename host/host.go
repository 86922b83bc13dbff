package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/ref"
	"github.com/stevedore-oci/stevedore/host/prestart"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// Options configure a Host.
type Options struct {
	// SearchPath lists directories searched for plugin binaries, first
	// match wins. Nil means DefaultSearchPath().
	SearchPath []string
	// Logger receives the host's and the plugins' logs. Nil means warnings
	// and errors on stderr.
	Logger hclog.Logger
	// InProcess plugins serve their transports without a process, ahead of
	// any binary on the search path. Useful to embedders and tests.
	InProcess []pluginapi.Plugin
	// Pins, if set, are the sha256 sums pinned plugin binaries must have
	// (see LoadPins); a binary that differs is refused before it runs.
	Pins *Pins
	// CallTimeout bounds each control call to a plugin process, and
	// IdleTimeout the time a blob transfer may wait on a plugin without a
	// byte moving. Zero means $STEVEDORE_PLUGIN_CALL_TIMEOUT and
	// $STEVEDORE_PLUGIN_IDLE_TIMEOUT, else DefaultCallTimeout and
	// DefaultIdleTimeout; negative disables.
	CallTimeout, IdleTimeout time.Duration
}

// Host discovers and runs transport plugins. It is safe for concurrent use.
// Close it to stop every plugin process it started.
type Host struct {
	logger    hclog.Logger
	search    []string
	inProcess map[string]pluginapi.Plugin
	launchCfg launchConfig

	mu        sync.Mutex
	bins      []PluginBinary
	scanned   bool
	running   map[string]*running // by binary name
	launching map[string]*launchState
	byTrans   map[string]*running // transport -> process serving it
	socketDir string
	plane     *pluginapi.DataPlane
	closed    bool

	// sockets is socketDir and plane for Abort, which cannot wait for mu.
	sockets atomic.Pointer[sockets]
}

// sockets are the socket directory and data plane a host's plugins share.
type sockets struct {
	dir   string
	plane *pluginapi.DataPlane
}

// New creates a Host. It starts no process until a call needs a transport.
func New(opts Options) (*Host, error) {
	lc, err := newLaunchConfig(opts)
	if err != nil {
		return nil, err
	}
	h := &Host{
		launchCfg: lc,
		logger:    opts.Logger,
		search:    opts.SearchPath,
		inProcess: map[string]pluginapi.Plugin{},
		running:   map[string]*running{},
		launching: map[string]*launchState{},
		byTrans:   map[string]*running{},
	}
	if h.logger == nil {
		h.logger = hclog.New(&hclog.LoggerOptions{Name: "stevedore", Level: hclog.Warn, Output: os.Stderr})
	}
	if h.search == nil {
		h.search = DefaultSearchPath()
	}
	for _, p := range opts.InProcess {
		for _, t := range p.Transports() {
			if _, dup := h.inProcess[t]; !dup {
				h.inProcess[t] = p
			}
		}
	}
	return h, nil
}

// Close stops every plugin process. The Host is unusable afterwards.
//
// Every endpoint a call opens is closed before the call returns, and a
// plugin finishes its cleanup (discarding uncommitted writes) before it
// answers Close; so the processes are killed outright rather than asked to
// shut down, and a wedged plugin cannot hold the host for go-plugin's grace
// period.
// Abort kills every plugin process (and what it started) at once, without
// the grace Close gives calls under way: for a second interrupt, when the
// user will not wait. It removes the socket directories too, as the
// process exits next and Close would not run. The host is unusable
// afterwards; Close still cleans up.
func (h *Host) Abort() {
	// Close may hold the lock, waiting out its grace: the plugins then die
	// with the host anyway (Pdeathsig).
	if h.mu.TryLock() {
		for _, r := range h.running {
			killGroup(r.cmd)
		}
		h.mu.Unlock()
	}
	if s := h.sockets.Load(); s != nil {
		s.plane.RemoveDir()
		os.RemoveAll(s.dir)
	}
}

func (h *Host) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	var wg sync.WaitGroup
	for _, r := range h.running {
		wg.Add(1)
		go func(r *running) {
			defer wg.Done()
			r.kill()
		}(r)
	}
	wg.Wait()
	h.running, h.byTrans = nil, nil
	if h.plane != nil {
		h.plane.Close()
	}
	if h.socketDir != "" {
		os.RemoveAll(h.socketDir)
	}
	return nil
}

// Binaries lists the plugin binaries on the search path.
func (h *Host) Binaries() []PluginBinary {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.binariesLocked()
}

func (h *Host) binariesLocked() []PluginBinary {
	if !h.scanned {
		h.bins = Discover(h.search)
		h.scanned = true
	}
	return h.bins
}

// PluginStatus describes one discovered plugin binary.
type PluginStatus struct {
	Binary PluginBinary
	Info   pluginapi.PluginInfo
	Err    error
}

// Plugins launches every discovered binary to ask what it serves.
func (h *Host) Plugins(ctx context.Context) []PluginStatus {
	bins := h.Binaries()
	out := make([]PluginStatus, len(bins))
	for i, b := range bins {
		out[i].Binary = b
		r, err := h.start(ctx, b)
		if err != nil {
			out[i].Err = err
			continue
		}
		out[i].Info = r.info
	}
	return out
}

// start returns the running process of binary b, launching it if needed.
// Launches happen outside the host's lock, so that a copy's source and
// destination plugins start side by side; callers asking for a binary
// being launched wait for that launch.
func (h *Host) start(ctx context.Context, b PluginBinary) (*running, error) {
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return nil, fmt.Errorf("host is closed: %w", core.ErrUnavailable)
		}
		if r, ok := h.running[b.Name]; ok && !r.client.Exited() {
			h.mu.Unlock()
			return r, nil
		}
		if l, ok := h.launching[b.Name]; ok {
			h.mu.Unlock()
			select {
			case <-l.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if l.err != nil && ctx.Err() == nil && (errors.Is(l.err, context.Canceled) || errors.Is(l.err, context.DeadlineExceeded)) {
				continue // only the launching caller gave up: try ourselves
			}
			return l.r, l.err
		}
		dir, plane, err := h.launchResourcesLocked()
		if err != nil {
			h.mu.Unlock()
			return nil, err
		}
		l := &launchState{done: make(chan struct{})}
		h.launching[b.Name] = l
		h.mu.Unlock()

		r, err := launch(ctx, b, dir, plane, h.logger, h.launchCfg)

		h.mu.Lock()
		delete(h.launching, b.Name)
		if err == nil && h.closed {
			r.kill()
			r, err = nil, fmt.Errorf("host is closed: %w", core.ErrUnavailable)
		}
		if err == nil {
			h.running[b.Name] = r
			for _, t := range r.info.Transports {
				// A claim counts only where the binary may serve the
				// transport (never a built-in one of another binary's);
				// then first come is served, except that the binary named
				// after a transport is the one meant to serve it, whatever
				// the order in which concurrent launches finish.
				if !mayServe(h.binariesLocked(), b, t) {
					h.logger.Warn(fmt.Sprintf("plugin %s (%s) claims transport %s, which another binary serves: ignored", b.Name, b.Path, t))
					continue
				}
				if cur, taken := h.byTrans[t]; !taken || (b.Name == t && cur.bin.Name != t) {
					h.byTrans[t] = r
				}
			}
		}
		l.r, l.err = r, err
		close(l.done)
		h.mu.Unlock()
		return r, err
	}
}

// launchState is a launch in progress; done is closed when r or err is set.
type launchState struct {
	done chan struct{}
	r    *running
	err  error
}

// launchResourcesLocked creates, once, the socket directory and the data
// plane every plugin of this host shares.
func (h *Host) launchResourcesLocked() (string, *pluginapi.DataPlane, error) {
	if h.socketDir == "" {
		// The directory of the processes started ahead (package
		// prestart) if there is one: the host removes it with its own.
		h.socketDir = prestart.TakeDir()
	}
	if h.socketDir == "" {
		dir, err := pluginapi.MkdirSockets("stvd-")
		if err != nil {
			return "", nil, fmt.Errorf("plugin socket directory: %w", err)
		}
		h.socketDir = dir
	}
	if h.plane == nil {
		// One data-plane socket serves every plugin of this host, made
		// when the first blob moves.
		h.plane = pluginapi.NewLazyDataPlane()
	}
	if h.sockets.Load() == nil {
		h.sockets.Store(&sockets{dir: h.socketDir, plane: h.plane})
	}
	return h.socketDir, h.plane, nil
}

// servedBy returns the plugin serving transport, launching binaries in
// order of likelihood until one serves it.
func (h *Host) servedBy(ctx context.Context, transport string) (pluginapi.Plugin, *running, error) {
	if p, ok := h.inProcess[transport]; ok {
		return p, nil, nil
	}
	h.mu.Lock()
	if r, ok := h.byTrans[transport]; ok && !r.client.Exited() {
		h.mu.Unlock()
		return r.remote, r, nil
	}
	bins := h.binariesLocked()
	h.mu.Unlock()
	var errs []string
	// The binary named after the transport is the one meant to serve it:
	// when it is refused (pin, protocol) or crashes, say that, not "none".
	var exactErr error
	for _, b := range candidates(bins, transport) {
		h.mu.Lock()
		r, started := h.running[b.Name]
		h.mu.Unlock()
		if started {
			// Launched before: it serves the transport or it does not.
			if !r.client.Exited() && r.serves(transport) && mayServe(bins, b, transport) {
				return r.remote, r, nil
			}
			continue
		}
		r, err := h.start(ctx, b)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			h.logger.Debug("plugin failed to start", "path", b.Path, "error", err)
			if b.Name == transport && exactErr == nil {
				exactErr = err
			}
			errs = append(errs, err.Error())
			continue
		}
		if r.serves(transport) && mayServe(bins, b, transport) {
			return r.remote, r, nil
		}
	}
	if exactErr != nil {
		return nil, nil, exactErr
	}
	msg := fmt.Sprintf("no plugin serves transport %q (searched %s", transport, strings.Join(h.search, ":"))
	if bad := unusableBinaries(h.search, transport); len(bad) > 0 {
		msg += "; " + strings.Join(bad, "; ")
	} else if len(bins) == 0 {
		msg += "; no stevedore-transport-* binaries there: build them with make build or set STEVEDORE_PLUGIN_PATH"
	}
	if len(errs) > 0 {
		msg += "; failed: " + strings.Join(errs, "; ")
	}
	return nil, nil, fmt.Errorf("%s): %w", msg, core.ErrUnsupported)
}

// ParseEndpoint parses s with the built-in syntax, or as
// TRANSPORT:LOCATION[:REF] when a plugin on the search path serves a
// transport not built in.
func (h *Host) ParseEndpoint(ctx context.Context, s string) (ref.Endpoint, error) {
	ep, err := ref.Parse(s)
	if err == nil || !errors.Is(err, ref.ErrUnknownTransport) {
		return ep, err
	}
	gen, gerr := ref.ParseGeneric(s)
	if gerr != nil {
		return ref.Endpoint{}, gerr
	}
	if _, _, serr := h.servedBy(ctx, gen.Transport); serr != nil {
		return ref.Endpoint{}, fmt.Errorf("endpoint %q: unknown transport %q: it is not built in (%s) and %w",
			s, gen.Transport, strings.Join(ref.Builtin, ", "), serr)
	}
	return gen, nil
}

// endpoint is an opened endpoint with what the host knows about it.
type endpoint struct {
	pluginapi.Endpoint
	// Source and Destination are set when the endpoint implements them.
	pluginapi.Source
	pluginapi.Destination
	ep   ref.Endpoint
	run  *running // nil for in-process plugins
	caps map[string]bool
	// owner is the plugin that opened the endpoint: two endpoints of one
	// owner may copy blobs between them inside it (copy-blob).
	owner pluginapi.Plugin
	// opened is the context the endpoint was opened under.
	opened context.Context
}

// closeGrace is how long closing an endpoint waits for its plugin once the
// command that opened it was cancelled.
const closeGrace = 3 * time.Second

// Close closes the endpoint in its plugin. Callers pass a context that
// outlives their cancellation (the close must happen); once the command was
// cancelled, a plugin that does not answer (wedged, stopped) is waited for
// closeGrace, not the whole call deadline, so an interrupt ends the command
// in seconds.
func (e *endpoint) Close(ctx context.Context) error {
	if e.opened != nil && e.opened.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, closeGrace)
		defer cancel()
	}
	return e.Endpoint.Close(ctx)
}

func (e *endpoint) has(c string) bool { return e.caps[c] }

// wrap names the endpoint, and the plugin when its process died.
func (e *endpoint) wrap(step string, err error) error {
	if err == nil {
		return nil
	}
	if e.run != nil && e.run.client.Exited() {
		err = &PluginError{Plugin: e.run.bin.Name, Path: e.run.bin.Path, Err: fmt.Errorf("%w during %s: %w", errPluginExited, step, err)}
	}
	if step == "" || strings.Contains(err.Error(), step) {
		// Plugins name the step themselves (the docker transport says
		// "registry R, repository X: check blob D: ..."): do not repeat it.
		return err
	}
	return fmt.Errorf("%s: %w", step, err)
}

func capsOf(e pluginapi.Endpoint) map[string]bool {
	var list []string
	if c, ok := e.(interface{ Capabilities() []string }); ok {
		list = c.Capabilities()
	} else {
		list = pluginapi.Capabilities(e)
	}
	m := make(map[string]bool, len(list))
	for _, c := range list {
		m[c] = true
	}
	return m
}

func (h *Host) open(ctx context.Context, ep ref.Endpoint, mode pluginapi.Mode, opts map[string]string) (*endpoint, error) {
	need := pluginapi.CapSource
	if mode == pluginapi.ModeWrite {
		need = pluginapi.CapDest
	}
	return h.openFor(ctx, ep, mode, opts, need)
}

// openFor opens ep, which must advertise capability need.
func (h *Host) openFor(ctx context.Context, ep ref.Endpoint, mode pluginapi.Mode, opts map[string]string, need string) (*endpoint, error) {
	p, r, err := h.servedBy(ctx, ep.Transport)
	if err != nil {
		return nil, err
	}
	e, err := p.Open(ctx, pluginapi.OpenRequest{Transport: ep.Transport, Location: ep.Location, Mode: mode, Options: opts})
	if err != nil {
		o := &endpoint{ep: ep, run: r}
		err = o.wrap("", err)
		name := ep.WithRef("").String()
		if strings.HasPrefix(err.Error(), name+": ") {
			// The plugin named the endpoint already (docker://R/A: ...).
			return nil, fmt.Errorf("open %w", err)
		}
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	o := &endpoint{Endpoint: e, ep: ep, run: r, caps: capsOf(e), owner: p, opened: ctx}
	o.Source, _ = e.(pluginapi.Source)
	o.Destination, _ = e.(pluginapi.Destination)
	if !o.has(need) {
		e.Close(ctx)
		what := map[string]string{pluginapi.CapSource: "be a source", pluginapi.CapDest: "be a destination"}[need]
		if what == "" {
			what = "do " + need
		}
		return nil, fmt.Errorf("%s: transport %s cannot %s: %w", ep, ep.Transport, what, core.ErrUnsupported)
	}
	return o, nil
}

// Transports lists the transports available: in-process ones and those of
// plugins already started. Use Plugins to start and list them all.
func (h *Host) Transports() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for t := range h.inProcess {
		out = append(out, t)
	}
	for t := range h.byTrans {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
