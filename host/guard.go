package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// exitWait is how long a call that failed for want of a connection waits
// for go-plugin to notice that the plugin process died, so that the error
// can say so. The socket closes when the process dies and go-plugin reaps
// it at once, so this is short; it delays errors of live plugins that
// report core.ErrUnavailable themselves (a registry's 503) by as much.
const exitWait = 250 * time.Millisecond

// deadlineSlack is how early before the deadline a failed call still counts
// as timed out.
const deadlineSlack = 20 * time.Millisecond

// TimeoutError is a plugin call the host gave up on: the plugin did not
// answer within the per-call deadline, or (Idle) no byte of a blob moved for
// the inactivity timeout. It matches context.DeadlineExceeded and
// core.ErrUnavailable with errors.Is.
type TimeoutError struct {
	// Call names the call, e.g. `resolve "v1"` or "get blob sha256:...".
	Call  string
	After time.Duration
	Idle  bool
}

func (e *TimeoutError) Error() string {
	if e.Idle {
		return fmt.Sprintf("%s: no data moved for %s, gave up (set %s if the plugin is just slow)", e.Call, e.After, EnvIdleTimeout)
	}
	return fmt.Sprintf("%s: no answer within %s, gave up (set %s if the plugin is just slow)", e.Call, e.After, EnvCallTimeout)
}

// Is makes errors.Is match context.DeadlineExceeded and core.ErrUnavailable.
func (e *TimeoutError) Is(target error) bool {
	return target == context.DeadlineExceeded || target == core.ErrUnavailable
}

// guard applies one plugin process's timeouts and names it in errors.
type guard struct {
	bin    PluginBinary
	client *plugin.Client
	call   time.Duration // <= 0: no deadline
	idle   time.Duration // <= 0: no inactivity timeout
	// abandoned: the host stopped waiting for a call (cancelled or timed
	// out) that may still be running in the plugin, cleaning up.
	abandoned atomic.Bool
}

// do runs one control call under the per-call deadline.
func (g *guard) do(ctx context.Context, what string, f func(context.Context) error) error {
	if g.call <= 0 {
		return g.exited(what, f(ctx))
	}
	cctx, cancel := context.WithTimeout(ctx, g.call)
	defer cancel()
	deadline, _ := cctx.Deadline()
	err := f(cctx)
	// The plugin's gRPC server has the deadline too and may reset the call
	// a moment before our own timer fires: go by the clock.
	if err != nil && ctx.Err() == nil && (cctx.Err() != nil || !time.Now().Before(deadline.Add(-deadlineSlack))) {
		g.abandoned.Store(true)
		return g.named(&TimeoutError{Call: what, After: g.call})
	}
	return g.exited(what, err)
}

// bulk runs a call that may take long inside the plugin (Commit,
// PutBlobFile): no deadline, but a crash is still named.
func (g *guard) bulk(ctx context.Context, what string, f func(context.Context) error) error {
	return g.exited(what, f(ctx))
}

func (g *guard) named(err error) error {
	return &PluginError{Plugin: g.bin.Name, Path: g.bin.Path, Err: err}
}

// exited names the plugin when err came from its process dying. Connection
// failures wait a moment for go-plugin to notice the exit.
func (g *guard) exited(what string, err error) error {
	if errors.Is(err, context.Canceled) {
		g.abandoned.Store(true)
	}
	if err == nil || g.client == nil || errors.Is(err, context.Canceled) {
		return err
	}
	wait := errors.Is(err, core.ErrUnavailable) || errors.Is(err, io.ErrUnexpectedEOF)
	deadline := time.Now().Add(exitWait)
	for !g.client.Exited() {
		if !wait || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
	return g.named(fmt.Errorf("%w during %s: %w", errPluginExited, what, err))
}

// result turns the error of a blob transfer into a timeout when the
// watchdog cancelled it, else checks for a crash.
func (g *guard) result(parent context.Context, what string, w *watchdog, err error) error {
	if te := w.firedError(); te != nil && parent.Err() == nil {
		g.abandoned.Store(true)
		return g.named(te)
	}
	return g.exited(what, err)
}

// refName quotes a ref for messages; "" is the endpoint's default.
func refName(ref string) string {
	if ref == "" {
		return "(default)"
	}
	return strconv.Quote(ref)
}

// guardedPlugin is a plugin process's RemotePlugin with its endpoints
// wrapped in the guard.
type guardedPlugin struct {
	*pluginapi.RemotePlugin
	g *guard
}

var _ pluginapi.Plugin = (*guardedPlugin)(nil)

// Open implements pluginapi.Plugin.
func (p *guardedPlugin) Open(ctx context.Context, req pluginapi.OpenRequest) (pluginapi.Endpoint, error) {
	var e *pluginapi.RemoteEndpoint
	err := p.g.do(ctx, "open "+req.Transport+":"+req.Location, func(ctx context.Context) (err error) {
		e, err = p.RemotePlugin.OpenRemote(ctx, req)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &guardedEndpoint{e: e, g: p.g}, nil
}

// guardedEndpoint is a *pluginapi.RemoteEndpoint whose calls are bounded by
// the guard. Like RemoteEndpoint it has every optional method; Capabilities
// says which the plugin supports.
type guardedEndpoint struct {
	e *pluginapi.RemoteEndpoint
	g *guard
}

var (
	_ pluginapi.Source             = (*guardedEndpoint)(nil)
	_ pluginapi.ManifestResolver   = (*guardedEndpoint)(nil)
	_ pluginapi.Destination        = (*guardedEndpoint)(nil)
	_ pluginapi.TagLister          = (*guardedEndpoint)(nil)
	_ pluginapi.RepositoryLister   = (*guardedEndpoint)(nil)
	_ pluginapi.ReferrerLister     = (*guardedEndpoint)(nil)
	_ pluginapi.Deleter            = (*guardedEndpoint)(nil)
	_ pluginapi.Mounter            = (*guardedEndpoint)(nil)
	_ pluginapi.Committer          = (*guardedEndpoint)(nil)
	_ pluginapi.BlobPather         = (*guardedEndpoint)(nil)
	_ pluginapi.FilePutter         = (*guardedEndpoint)(nil)
	_ pluginapi.FileProgressPutter = (*guardedEndpoint)(nil)
	_ pluginapi.BlobFileGetter     = (*guardedEndpoint)(nil)
	_ pluginapi.BlobCopier         = (*guardedEndpoint)(nil)
	_ pluginapi.BlobStager         = (*guardedEndpoint)(nil)
	_ pluginapi.SignatureLister    = (*guardedEndpoint)(nil)
	_ pluginapi.SignatureWriter    = (*guardedEndpoint)(nil)
)

// Capabilities lists what the plugin advertised for this endpoint.
func (e *guardedEndpoint) Capabilities() []string { return e.e.Capabilities() }

func (e *guardedEndpoint) String() string { return e.e.String() }

func (e *guardedEndpoint) Close(ctx context.Context) error {
	return e.g.do(ctx, "close "+e.e.String(), e.e.Close)
}

func (e *guardedEndpoint) Resolve(ctx context.Context, ref string) (d ocispec.Descriptor, err error) {
	err = e.g.do(ctx, "resolve "+refName(ref), func(ctx context.Context) (err error) {
		d, err = e.e.Resolve(ctx, ref)
		return err
	})
	return d, err
}

func (e *guardedEndpoint) ResolveManifest(ctx context.Context, ref string) (d ocispec.Descriptor, raw []byte, err error) {
	err = e.g.do(ctx, "resolve "+refName(ref), func(ctx context.Context) (err error) {
		d, raw, err = e.e.ResolveManifest(ctx, ref)
		return err
	})
	return d, raw, err
}

func (e *guardedEndpoint) GetManifest(ctx context.Context, desc ocispec.Descriptor) (raw []byte, err error) {
	err = e.g.do(ctx, "get manifest "+desc.Digest.String(), func(ctx context.Context) (err error) {
		raw, err = e.e.GetManifest(ctx, desc)
		return err
	})
	return raw, err
}

func (e *guardedEndpoint) HasBlob(ctx context.Context, desc ocispec.Descriptor) (ok bool, err error) {
	err = e.g.do(ctx, "has blob "+desc.Digest.String(), func(ctx context.Context) (err error) {
		ok, err = e.e.HasBlob(ctx, desc)
		return err
	})
	return ok, err
}

func (e *guardedEndpoint) PutManifest(ctx context.Context, desc ocispec.Descriptor, raw []byte, ref string) error {
	return e.g.do(ctx, "put manifest "+desc.Digest.String(), func(ctx context.Context) error {
		return e.e.PutManifest(ctx, desc, raw, ref)
	})
}

func (e *guardedEndpoint) ListTags(ctx context.Context) (tags []string, err error) {
	err = e.g.do(ctx, "list tags", func(ctx context.Context) (err error) {
		tags, err = e.e.ListTags(ctx)
		return err
	})
	return tags, err
}

func (e *guardedEndpoint) ListRepositories(ctx context.Context) (locs []string, err error) {
	err = e.g.do(ctx, "list repositories", func(ctx context.Context) (err error) {
		locs, err = e.e.ListRepositories(ctx)
		return err
	})
	return locs, err
}

func (e *guardedEndpoint) Referrers(ctx context.Context, subject digest.Digest, artifactType string) (ds []ocispec.Descriptor, err error) {
	err = e.g.do(ctx, "referrers of "+subject.String(), func(ctx context.Context) (err error) {
		ds, err = e.e.Referrers(ctx, subject, artifactType)
		return err
	})
	return ds, err
}

func (e *guardedEndpoint) Delete(ctx context.Context, ref string) error {
	return e.g.do(ctx, "delete "+refName(ref), func(ctx context.Context) error { return e.e.Delete(ctx, ref) })
}

func (e *guardedEndpoint) MountBlob(ctx context.Context, desc ocispec.Descriptor, from string) (ok bool, err error) {
	err = e.g.do(ctx, "mount blob "+desc.Digest.String(), func(ctx context.Context) (err error) {
		ok, err = e.e.MountBlob(ctx, desc, from)
		return err
	})
	return ok, err
}

func (e *guardedEndpoint) BlobPath(ctx context.Context, desc ocispec.Descriptor) (p string, err error) {
	err = e.g.do(ctx, "blob path "+desc.Digest.String(), func(ctx context.Context) (err error) {
		p, err = e.e.BlobPath(ctx, desc)
		return err
	})
	return p, err
}

func (e *guardedEndpoint) Commit(ctx context.Context) error {
	return e.g.bulk(ctx, "commit", e.e.Commit)
}

func (e *guardedEndpoint) PutBlobFile(ctx context.Context, desc ocispec.Descriptor, path string) error {
	return e.g.bulk(ctx, "put blob "+desc.Digest.String()+" from "+path, func(ctx context.Context) error {
		return e.e.PutBlobFile(ctx, desc, path)
	})
}

// PutBlobFileProgress and GetBlobToFile: the plugin moves a blob between a
// local file and elsewhere by itself, reporting the bytes moved (see
// fileTransfer).
func (e *guardedEndpoint) PutBlobFileProgress(ctx context.Context, desc ocispec.Descriptor, path string, progress func(sent int64)) error {
	return e.fileTransfer(ctx, "put blob "+desc.Digest.String()+" from "+path, desc.Size, progress, func(ctx context.Context, progress func(int64)) error {
		return e.e.PutBlobFileProgress(ctx, desc, path, progress)
	})
}

func (e *guardedEndpoint) GetBlobToFile(ctx context.Context, desc ocispec.Descriptor, path string, progress func(written int64)) error {
	return e.fileTransfer(ctx, "get blob "+desc.Digest.String()+" into "+path, desc.Size, progress, func(ctx context.Context, progress func(int64)) error {
		return e.e.GetBlobToFile(ctx, desc, path, progress)
	})
}

// CopyBlobFrom: the plugin copies a blob between two of its endpoints by
// itself (see fileTransfer); from is unwrapped by the RemoteEndpoint.
func (e *guardedEndpoint) CopyBlobFrom(ctx context.Context, desc ocispec.Descriptor, from pluginapi.Endpoint, progress func(moved int64)) error {
	return e.fileTransfer(ctx, "copy blob "+desc.Digest.String()+" from "+fmt.Sprint(from), desc.Size, progress, func(ctx context.Context, progress func(int64)) error {
		return e.e.CopyBlobFrom(ctx, desc, from, progress)
	})
}

// Unwrap returns the plugin's endpoint, for calls that name another
// endpoint of the same plugin (CopyBlobFrom).
func (e *guardedEndpoint) Unwrap() pluginapi.Endpoint { return e.e }

// fileTransfer times a transfer the plugin does by itself from its reports
// of the bytes moved: while some remain, the inactivity timeout runs from
// each report (a transfer that stopped moving is given up); once all are
// moved, the call deadline bounds what is left (an upload's final check), as
// after PutBlob's last byte.
func (e *guardedEndpoint) fileTransfer(ctx context.Context, what string, size int64, progress func(int64), run func(context.Context, func(int64)) error) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := newWatchdog(cancel)
	defer w.stop()
	w.arm(e.g.idle, what, true)
	err := run(wctx, func(n int64) {
		if n >= size {
			w.arm(e.g.call, what, false)
		} else {
			w.arm(e.g.idle, what, true)
		}
		if progress != nil {
			progress(n)
		}
	})
	w.disarm()
	if err != nil {
		return e.g.result(ctx, what, w, err)
	}
	return nil
}

func (e *guardedEndpoint) StageBlob(ctx context.Context, desc ocispec.Descriptor) (p string, err error) {
	err = e.g.do(ctx, "stage blob "+desc.Digest.String(), func(ctx context.Context) (err error) {
		p, err = e.e.StageBlob(ctx, desc)
		return err
	})
	return p, err
}

// CommitStagedBlob fsyncs (and, unless host-verified, hashes) a whole blob
// inside the plugin: bulk work, like PutBlobFile.
func (e *guardedEndpoint) CommitStagedBlob(ctx context.Context, desc ocispec.Descriptor, path string) error {
	return e.g.bulk(ctx, "commit staged blob "+desc.Digest.String(), func(ctx context.Context) error {
		return e.e.CommitStagedBlob(ctx, desc, path)
	})
}

func (e *guardedEndpoint) AbortStagedBlob(ctx context.Context, path string) error {
	return e.g.do(ctx, "abort staged blob "+path, func(ctx context.Context) error {
		return e.e.AbortStagedBlob(ctx, path)
	})
}

func (e *guardedEndpoint) Signatures(ctx context.Context, m digest.Digest) (sigs [][]byte, err error) {
	err = e.g.do(ctx, "signatures of "+m.String(), func(ctx context.Context) (err error) {
		sigs, err = e.e.Signatures(ctx, m)
		return err
	})
	return sigs, err
}

func (e *guardedEndpoint) PutSignatures(ctx context.Context, m digest.Digest, sigs [][]byte) error {
	return e.g.do(ctx, "put signatures of "+m.String(), func(ctx context.Context) error {
		return e.e.PutSignatures(ctx, m, sigs)
	})
}

// GetBlob implements Source. The watchdog counts while the host waits on the
// plugin (the call, then each Read), not while the consumer is busy.
func (e *guardedEndpoint) GetBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	what := "get blob " + desc.Digest.String()
	wctx, cancel := context.WithCancel(ctx)
	w := newWatchdog(cancel)
	w.arm(e.g.idle, what, true)
	rc, err := e.e.GetBlob(wctx, desc, offset)
	w.disarm()
	if err != nil {
		w.stop()
		cancel()
		return nil, e.g.result(ctx, what, w, err)
	}
	return &guardedReader{rc: rc, w: w, g: e.g, what: what, parent: ctx, cancel: cancel}, nil
}

type guardedReader struct {
	rc     io.ReadCloser
	w      *watchdog
	g      *guard
	what   string
	parent context.Context
	cancel context.CancelFunc
}

func (r *guardedReader) Read(p []byte) (int, error) {
	r.w.arm(r.g.idle, r.what, true)
	n, err := r.rc.Read(p)
	r.w.disarm()
	if err != nil && err != io.EOF {
		err = r.g.result(r.parent, r.what, r.w, err)
	}
	return n, err
}

func (r *guardedReader) Close() error {
	err := r.rc.Close()
	r.w.stop()
	r.cancel()
	return err
}

// PutBlob implements Destination. The watchdog counts while the plugin is
// to take bytes (the host is not reading its source): the inactivity timeout
// until the source is drained and the plugin has read every byte sent, then
// the call deadline for the plugin's verdict.
func (e *guardedEndpoint) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	what := "put blob " + desc.Digest.String()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := newWatchdog(cancel)
	defer w.stop()
	w.arm(e.g.idle, what, true)
	// Once the source has ended, bytes may still wait in the socket for
	// the plugin: the inactivity timeout runs until it has read them all,
	// each fall of the count restarting it; then the call deadline.
	last := -1
	wctx = pluginapi.WithUnreadWatch(wctx, func(unread int) {
		switch {
		case unread == 0:
			w.arm(e.g.call, what, false)
		case last < 0 || unread < last:
			w.arm(e.g.idle, what, true)
		}
		last = unread
	})
	err := e.e.PutBlob(wctx, desc, &feedReader{r: r, w: w, g: e.g, what: what})
	w.disarm()
	if err != nil {
		return e.g.result(ctx, what, w, err)
	}
	return nil
}

// feedReader is the source side of PutBlob: time spent reading the source
// is not the destination plugin's.
type feedReader struct {
	r    io.Reader
	w    *watchdog
	g    *guard
	what string
}

func (f *feedReader) Read(p []byte) (int, error) {
	f.w.disarm()
	n, err := f.r.Read(p)
	if err != nil {
		f.w.arm(f.g.call, f.what, false)
	} else {
		f.w.arm(f.g.idle, f.what, true)
	}
	return n, err
}

// watchdog cancels a transfer when it stays armed for longer than its
// duration. One timer is reused; arm and disarm are cheap enough to call
// around every Read.
type watchdog struct {
	cancel context.CancelFunc
	timer  *time.Timer

	mu       sync.Mutex
	armed    bool
	deadline time.Time
	pending  TimeoutError
	fired    *TimeoutError
}

func newWatchdog(cancel context.CancelFunc) *watchdog {
	w := &watchdog{cancel: cancel}
	w.timer = time.AfterFunc(time.Hour, w.fire)
	w.timer.Stop()
	return w
}

// arm starts counting d; d <= 0 disarms.
func (w *watchdog) arm(d time.Duration, call string, idle bool) {
	if d <= 0 {
		w.disarm()
		return
	}
	w.mu.Lock()
	w.armed = true
	w.deadline = time.Now().Add(d)
	w.pending = TimeoutError{Call: call, After: d, Idle: idle}
	w.mu.Unlock()
	w.timer.Reset(d)
}

func (w *watchdog) disarm() {
	w.mu.Lock()
	w.armed = false
	w.mu.Unlock()
	w.timer.Stop()
}

func (w *watchdog) stop() { w.disarm() }

// fire runs on the timer; a stale run (disarmed or re-armed since) is
// ignored.
func (w *watchdog) fire() {
	w.mu.Lock()
	if !w.armed || w.fired != nil || time.Now().Before(w.deadline) {
		w.mu.Unlock()
		return
	}
	te := w.pending
	w.fired = &te
	w.mu.Unlock()
	w.cancel()
}

func (w *watchdog) firedError() *TimeoutError {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fired
}
