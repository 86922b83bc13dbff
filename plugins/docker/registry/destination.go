package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/atomicfile"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

var octetStream = http.Header{"Content-Type": {"application/octet-stream"}}

// HasBlob implements pluginapi.Destination with a HEAD request.
func (w *Writer) HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	step := "check blob " + desc.Digest.String()
	if err := desc.Digest.Validate(); err != nil {
		return false, w.fail(step, fmt.Errorf("invalid digest: %v: %w", err, core.ErrInvalid))
	}
	ctx = w.scoped(ctx)
	u, err := w.url(ctx, "/blobs/"+desc.Digest.String())
	if err != nil {
		return false, err
	}
	resp, err := w.do(ctx, http.MethodHead, u, nil, 0, nil)
	if err != nil {
		return false, w.fail(step, err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if desc.Size > 0 && resp.ContentLength >= 0 && resp.ContentLength != desc.Size {
			return false, w.fail(step, &core.SizeMismatchError{Digest: desc.Digest, Expected: desc.Size, Actual: resp.ContentLength})
		}
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, w.fail(step, statusError(resp))
}

// PutBlob implements pluginapi.Destination. Blobs up to MonolithicMax go in
// one PUT streamed from r; larger ones in ChunkSize PATCHes, also streamed,
// that resume from the registry's offset when one breaks (see putChunks).
// Nothing is buffered but the replay window. The registry verifies the
// digest before the blob becomes visible (a mismatch is DIGEST_INVALID).
func (w *Writer) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	return w.putBlob(ctx, "push blob "+desc.Digest.String(), desc, r, nil)
}

// checkBlobDesc refuses a descriptor no blob can match.
func checkBlobDesc(desc ocispec.Descriptor) error {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("invalid digest: %v: %w", err, core.ErrInvalid)
	}
	if desc.Size < 0 {
		return fmt.Errorf("negative size %d: %w", desc.Size, core.ErrInvalid)
	}
	return nil
}

// putBlob uploads r, desc.Size bytes. file, when set, is r's file: a broken
// chunked upload resumes by reading the file again rather than from a
// memory window of the last bytes sent, and requests may carry the file's
// bytes straight from it (see localFile).
func (w *Writer) putBlob(ctx context.Context, step string, desc ocispec.Descriptor, r io.Reader, file *localFile) error {
	if err := checkBlobDesc(desc); err != nil {
		return w.fail(step, err)
	}
	ctx = w.scoped(ctx)
	up, reused, err := w.takeUpload(ctx, desc)
	if err != nil {
		return w.fail(step, err)
	}
	if desc.Size <= w.p.MonolithicMax {
		err = w.putWhole(ctx, up.loc, desc, r, file)
	} else {
		err = w.putChunks(ctx, up, desc, r, file)
	}
	var he *httpError
	if reused && errors.As(err, &he) && he.status == http.StatusNotFound {
		// The registry no longer knows the upload its refused mount
		// opened: the bytes read are spent, so the caller starts the blob
		// again, with an upload of its own.
		err = fmt.Errorf("the upload the refused mount opened is gone (%v): %w", err, core.ErrUnavailable)
	}
	if err != nil {
		return w.fail(step, err)
	}
	return nil
}

// takeUpload returns the upload a refused mount of desc opened (reused),
// else a new one.
func (w *Writer) takeUpload(ctx context.Context, desc ocispec.Descriptor) (up upload, reused bool, err error) {
	if kept, ok := w.pending.LoadAndDelete(desc.Digest); ok {
		return kept.(upload), true, nil
	}
	up, err = w.startUpload(ctx, "")
	return up, false, err
}

// PutBlobFile implements pluginapi.FilePutter: a blob the host has as a
// local file (an oci: source) is uploaded straight from it, not relayed
// through the host. The registry checks the digest when the upload is
// committed (PUT ?digest=) and refuses wrong content with DIGEST_INVALID, so
// nothing wrong becomes visible; the size is checked here first.
func (w *Writer) PutBlobFile(ctx context.Context, desc ocispec.Descriptor, path string) error {
	return w.PutBlobFileProgress(ctx, desc, path, nil)
}

// PutBlobFileProgress implements pluginapi.FileProgressPutter: PutBlobFile
// reporting the bytes of the file read into the upload so far (each MiB).
// A resumed chunk re-sends bytes already counted.
func (w *Writer) PutBlobFileProgress(ctx context.Context, desc ocispec.Descriptor, path string, progress func(sent int64)) error {
	step := "push blob " + desc.Digest.String() + " from " + path
	f, err := atomicfile.OpenRegular(path, os.O_RDONLY)
	if err != nil {
		return w.fail(step, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return w.fail(step, err)
	}
	if !fi.Mode().IsRegular() {
		return w.fail(step, fmt.Errorf("not a regular file: %w", core.ErrInvalid))
	}
	if fi.Size() != desc.Size {
		return w.fail(step, &core.SizeMismatchError{Digest: desc.Digest, Expected: desc.Size, Actual: fi.Size()})
	}
	return w.putBlob(ctx, step, desc, withProgress(f, progress), &localFile{f: f, progress: progress})
}

// localFile is the file a blob is uploaded from. A request whose body ends
// at the end of the file (a whole-blob PUT, a chunked upload's last PATCH)
// is sent from a descriptor of its own (from), which net/http hands to
// sendfile(2) over plain HTTP: the bytes do not cross user space, and the
// progress is read from the descriptor's offset, which sendfile advances
// (sendFrom). A PATCH in the middle of the file cannot be sent so (net/http
// reads on past the request's length to check that its body ends there).
type localFile struct {
	f        *os.File
	progress func(sent int64) // nil: none asked for
}

// progressEvery is how often the offset of a file being sent is reported.
const progressEvery = 250 * time.Millisecond

// sendFrom runs send, reporting the offset of body, a descriptor from
// made, as the bytes of the blob sent so far while it runs, and end once
// it succeeded.
func (l *localFile) sendFrom(body *os.File, end int64, send func() error) error {
	if l.progress == nil {
		return send()
	}
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				// The transport closes body when the request ends: a
				// failed Seek then just ends the reports.
				if off, err := body.Seek(0, io.SeekCurrent); err == nil {
					l.progress(off)
				}
			}
		}
	}()
	err := send()
	close(stop)
	<-polled
	if err == nil {
		l.progress(end)
	}
	return err
}

// from opens the file again at offset off, for a request body the
// transport owns and closes. It refuses a file that is no longer the one
// being uploaded.
func (l *localFile) from(off int64) (*os.File, error) {
	g, err := os.Open(l.f.Name())
	if err != nil {
		return nil, err
	}
	a, err1 := l.f.Stat()
	b, err2 := g.Stat()
	if err1 != nil || err2 != nil || !os.SameFile(a, b) {
		g.Close()
		return nil, fmt.Errorf("%s was replaced during the upload: %w", l.f.Name(), core.ErrInvalid)
	}
	if _, err := g.Seek(off, io.SeekStart); err != nil {
		g.Close()
		return nil, err
	}
	return g, nil
}

// sentFromFile counts request bodies sent straight from a file (tests).
var sentFromFile atomic.Int64

// withProgress reports the bytes read through r each MiB and at the end,
// when there is a progress to report to.
func withProgress(r io.Reader, progress func(int64)) io.Reader {
	if progress == nil {
		return r
	}
	return pluginapi.ProgressReader(r, 1<<20, progress)
}

// CopyBlobFrom implements pluginapi.BlobCopier: a blob of another
// repository this plugin opened (another registry, or one that refused a
// mount) is downloaded and uploaded here in one stream inside the plugin,
// each side resuming as it does alone; this registry checks the digest when
// the upload is committed (DIGEST_INVALID otherwise), so nothing wrong
// becomes visible.
func (w *Writer) CopyBlobFrom(ctx context.Context, desc ocispec.Descriptor, from pluginapi.Endpoint, progress func(moved int64)) error {
	var src *endpoint
	switch f := from.(type) {
	case *Reader:
		src = f.endpoint
	case *Writer:
		src = f.endpoint
	default:
		return fmt.Errorf("docker://%s: copy blob %s: cannot copy from %T: %w", w.location, desc.Digest, from, core.ErrUnsupported)
	}
	step := "copy blob " + desc.Digest.String() + " from docker://" + src.location
	if err := checkBlobDesc(desc); err != nil {
		return w.fail(step, err)
	}
	rc, err := src.GetBlob(ctx, desc, 0)
	if err != nil {
		return err
	}
	defer rc.Close()
	return w.putBlob(ctx, step, desc, withProgress(rc, progress), nil)
}

// upload is an upload session started by startUpload.
type upload struct {
	loc string // where its requests go
	// created is set when the registry answered 201: a mount that
	// happened, no session.
	created bool
	// minChunk is the smallest PATCH the registry takes but for the last
	// (its OCI-Chunk-Min-Length), 0 when it names none.
	minChunk int64
}

// startUpload POSTs to the uploads endpoint (with a mount query when asked).
func (w *Writer) startUpload(ctx context.Context, query string) (upload, error) {
	u, err := w.url(ctx, "/blobs/uploads/"+query)
	if err != nil {
		return upload{}, err
	}
	resp, err := w.do(ctx, http.MethodPost, u, nil, -1, nil)
	if err != nil {
		return upload{}, err
	}
	switch resp.StatusCode {
	case http.StatusCreated:
		resp.Body.Close()
		return upload{created: true}, nil
	case http.StatusAccepted:
		resp.Body.Close()
		loc, err := location(resp)
		if err != nil {
			return upload{}, err
		}
		up := upload{loc: loc}
		if n, err := strconv.ParseInt(resp.Header.Get("OCI-Chunk-Min-Length"), 10, 64); err == nil && n > 0 {
			up.minChunk = n
		}
		return up, nil
	}
	return upload{}, responseError(resp)
}

// location resolves the Location header of resp against its request URL.
func location(resp *http.Response) (string, error) {
	l := resp.Header.Get("Location")
	if l == "" {
		return "", fmt.Errorf("registry answered %s without a Location header: %w", resp.Status, core.ErrInvalid)
	}
	u, err := resp.Request.URL.Parse(l)
	if err != nil {
		return "", fmt.Errorf("registry sent a bad Location %q: %w", l, core.ErrInvalid)
	}
	return u.String(), nil
}

func withDigest(loc string, d digest.Digest) (string, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("digest", d.String())
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// cancelUpload abandons an upload session, best effort.
func (w *Writer) cancelUpload(ctx context.Context, loc string) {
	if loc == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if resp, err := w.do(ctx, http.MethodDelete, loc, nil, -1, nil); err == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
}

// sourceReader remembers the error of the reader it wraps, so that a
// failure of the host's stream is told apart from a failure of the network.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// exactReader yields exactly size bytes of r. A shorter stream is a size
// error; a longer one fails before its last byte is handed on, so that the
// request body never completes and the registry never commits the blob.
type exactReader struct {
	r      io.Reader
	desc   ocispec.Descriptor
	remain int64
	n      int64
}

func (x *exactReader) Read(p []byte) (int, error) {
	if x.remain == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > x.remain {
		p = p[:x.remain]
	}
	n, err := io.ReadFull(x.r, p)
	x.n += int64(n)
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		return 0, &core.SizeMismatchError{Digest: x.desc.Digest, Expected: x.desc.Size, Actual: x.n}
	}
	if err != nil {
		return 0, err
	}
	x.remain -= int64(n)
	if x.remain == 0 {
		var probe [1]byte
		if m, _ := io.ReadFull(x.r, probe[:]); m > 0 {
			return 0, &core.SizeMismatchError{Digest: x.desc.Digest, Expected: x.desc.Size, Actual: x.desc.Size + 1}
		}
	}
	return n, nil
}

func (w *Writer) putWhole(ctx context.Context, loc string, desc ocispec.Descriptor, r io.Reader, file *localFile) error {
	u, err := withDigest(loc, desc.Digest)
	if err != nil {
		return err
	}
	if file != nil && desc.Size > 0 {
		// The size was checked when the file was opened; net/http fails
		// the request if the file has grown since (after sending desc.Size
		// bytes: the registry then stores the blob only if those bytes
		// are the digest's), and the registry checks the digest.
		body, err := file.from(0)
		if err != nil {
			w.cancelUpload(ctx, loc)
			return err
		}
		sentFromFile.Add(1)
		var resp *http.Response
		err = file.sendFrom(body, desc.Size, func() (err error) {
			resp, err = w.do(ctx, http.MethodPut, u, body, desc.Size, octetStream)
			return err
		})
		if err != nil {
			w.cancelUpload(ctx, loc)
			return err
		}
		return checkCreated(resp, desc)
	}
	src := &sourceReader{r: &exactReader{r: r, desc: desc, remain: desc.Size}}
	var body io.Reader = src
	if desc.Size == 0 {
		if _, err := src.Read(make([]byte, 1)); err != io.EOF {
			w.cancelUpload(ctx, loc)
			if err == nil {
				err = &core.SizeMismatchError{Digest: desc.Digest, Actual: 1}
			}
			return err
		}
		body = nil
	}
	resp, err := w.do(ctx, http.MethodPut, u, body, desc.Size, octetStream)
	if src.err != nil {
		if err == nil {
			resp.Body.Close()
		}
		w.cancelUpload(ctx, loc)
		return src.err
	}
	if err != nil {
		w.cancelUpload(ctx, loc)
		return err
	}
	return checkCreated(resp, desc)
}

// checkCreated expects the 201 that completes an upload.
func checkCreated(resp *http.Response, desc ocispec.Descriptor) error {
	if resp.StatusCode != http.StatusCreated {
		return responseError(resp)
	}
	resp.Body.Close()
	return checkDigestHeader(resp, desc)
}

// checkDigestHeader compares the registry's Docker-Content-Digest, when it
// sends one, with what was stored.
func checkDigestHeader(resp *http.Response, desc ocispec.Descriptor) error {
	if got := digest.Digest(resp.Header.Get("Docker-Content-Digest")); got != "" && got != desc.Digest {
		return &core.DigestMismatchError{Expected: desc.Digest, Actual: got}
	}
	return nil
}

// replay gives back bytes of an upload already sent, to resume a PATCH that
// broke from the registry's offset.
type replay interface {
	// write records bytes as they are sent.
	write(p []byte)
	// holds reports whether the bytes from offset off to the newest sent
	// can be given back.
	holds(off int64) bool
	// readAt gives back sent bytes from offset off.
	readAt(p []byte, off int64) int
}

// fileReplay gives back bytes from the file being uploaded: any of them.
type fileReplay struct {
	f    io.ReaderAt
	sent int64
}

func (r *fileReplay) write(p []byte)       { r.sent += int64(len(p)) }
func (r *fileReplay) holds(off int64) bool { return off >= 0 && off <= r.sent }
func (r *fileReplay) readAt(p []byte, off int64) int {
	if n := r.sent - off; int64(len(p)) > n {
		p = p[:n]
	}
	n, _ := r.f.ReadAt(p, off)
	return n
}

// replayRing keeps the last len(buf) bytes sent of an upload, so that a
// PATCH that broke can be resumed from the registry's offset without
// holding whole chunks in memory.
type replayRing struct {
	buf []byte
	end int64 // absolute offset just past the newest byte kept
}

func (r *replayRing) write(p []byte) {
	w := int64(len(r.buf))
	if int64(len(p)) > w {
		r.end += int64(len(p)) - w
		p = p[int64(len(p))-w:]
	}
	for len(p) > 0 {
		n := copy(r.buf[r.end%w:], p)
		r.end += int64(n)
		p = p[n:]
	}
}

// holds reports whether the bytes from offset off to the end are kept.
func (r *replayRing) holds(off int64) bool {
	return off <= r.end && r.end-off <= int64(len(r.buf))
}

func (r *replayRing) readAt(p []byte, off int64) int {
	w := int64(len(r.buf))
	if n := r.end - off; int64(len(p)) > n {
		p = p[:n]
	}
	total := 0
	for len(p) > 0 {
		n := copy(p, r.buf[off%w:])
		p, off, total = p[n:], off+int64(n), total+n
	}
	return total
}

// patchBody feeds one PATCH covering [pos, end) of the blob: bytes already
// read from the source come from the ring (after a resume), new ones from
// the source, copied into the ring as they pass.
type patchBody struct {
	src      *sourceReader
	desc     ocispec.Descriptor
	ring     replay
	consumed *int64 // bytes read from the source so far
	pos, end int64
}

func (b *patchBody) Read(p []byte) (int, error) {
	if b.pos >= b.end {
		return 0, io.EOF
	}
	if int64(len(p)) > b.end-b.pos {
		p = p[:b.end-b.pos]
	}
	if b.pos < *b.consumed {
		if int64(len(p)) > *b.consumed-b.pos {
			p = p[:*b.consumed-b.pos]
		}
		n := b.ring.readAt(p, b.pos)
		b.pos += int64(n)
		return n, nil
	}
	n, err := b.src.Read(p)
	b.ring.write(p[:n])
	*b.consumed += int64(n)
	b.pos += int64(n)
	if err == io.EOF {
		if b.pos < b.end {
			b.src.err = &core.SizeMismatchError{Digest: b.desc.Digest, Expected: b.desc.Size, Actual: *b.consumed}
			return n, b.src.err
		}
		err = nil
	}
	return n, err
}

// putChunks uploads in PATCH requests of ChunkSize bytes (less when the
// registry refused larger ones, more when it asks for more with
// OCI-Chunk-Min-Length), each streamed from the source. When one breaks,
// the upload asks the registry how many bytes it holds and goes on from
// there, replaying up to ReplayWindow bytes kept in memory; a registry
// further behind (or one that drops the session, as distribution does after
// a partial PATCH) fails the upload. A chunk refused as too large (GHCR
// takes at most 4 MiB per PATCH) is sent again in smaller ones, and the
// registry's connection remembers the size for later uploads.
func (w *Writer) putChunks(ctx context.Context, up upload, desc ocispec.Descriptor, r io.Reader, file *localFile) error {
	loc := up.loc
	src := &sourceReader{r: r}
	var ring replay
	var fr *fileReplay
	if file != nil {
		fr = &fileReplay{f: file.f}
		ring = fr
	} else {
		rr := &replayRing{buf: w.p.getRing(max(1, min(w.p.ReplayWindow, desc.Size)))}
		defer w.p.putRing(rr.buf)
		ring = rr
	}
	var consumed, pos int64
	failures, shrinks := 0, 0
	direct := false // the last PATCH went from the file (see localFile)
	for pos < desc.Size {
		end := min(pos+w.chunkSize(up.minChunk), desc.Size)
		w.renewToken(ctx, loc)
		var body io.Reader = &patchBody{src: src, desc: desc, ring: ring, consumed: &consumed, pos: pos, end: end}
		var next string
		var err error
		if file != nil && end == desc.Size {
			g, ferr := file.from(pos)
			if ferr != nil {
				w.cancelUpload(ctx, loc)
				return ferr
			}
			// Every byte is the file's from here: a resume or a smaller
			// chunk reads them back from it.
			direct = true
			fr.sent, consumed = desc.Size, desc.Size
			sentFromFile.Add(1)
			err = file.sendFrom(g, end, func() (err error) {
				next, err = w.patch(ctx, loc, pos, end-pos, g)
				return err
			})
		} else {
			next, err = w.patch(ctx, loc, pos, end-pos, body)
		}
		if err == nil {
			loc, pos = next, end
			continue
		}
		if src.err != nil {
			w.cancelUpload(ctx, loc)
			return src.err
		}
		if ctx.Err() != nil {
			w.cancelUpload(ctx, loc)
			return ctx.Err()
		}
		if smaller, ok := tooLarge(err, end-pos, up.minChunk); ok && shrinks < maxShrinks {
			// The registry took none of it: the session still holds pos
			// bytes. Go on from there in smaller chunks if the refused
			// bytes can be sent again; else the host starts the blob
			// again, in chunks of the new size from the first byte.
			shrinks++
			w.conn.lowerChunkCap(smaller)
			if !ring.holds(pos) {
				w.cancelUpload(ctx, loc)
				return fmt.Errorf("the registry refused a %d-byte chunk as too large (%s); the bytes kept cannot send it again, so the upload starts again in chunks of at most %d bytes: %w", end-pos, oneLine(err.Error()), smaller, core.ErrUnavailable)
			}
			continue
		}
		if !resumable(err) || failures >= w.p.MaxRetries {
			w.cancelUpload(ctx, loc)
			if failures > 0 {
				// A resend after a break failed too (distribution, for
				// one, refuses a session whose bytes moved past its state
				// token): the upload is gone, the registry is not at
				// fault; the host may start the blob again.
				return fmt.Errorf("upload broke at byte %d and cannot resume (%s): %w", consumed, oneLine(err.Error()), core.ErrUnavailable)
			}
			return err
		}
		failures++
		t := time.NewTimer(backoff(failures-1, w.p.RetryBase, w.p.RetryMax))
		select {
		case <-ctx.Done():
			t.Stop()
			w.cancelUpload(ctx, loc)
			return ctx.Err()
		case <-t.C:
		}
		got, next, serr := w.uploadStatus(ctx, loc)
		if serr != nil {
			w.cancelUpload(ctx, loc)
			return fmt.Errorf("upload broke at byte %d (%v) and cannot resume (%s): %w", consumed, oneLine(err.Error()), oneLine(serr.Error()), core.ErrUnavailable)
		}
		if !ring.holds(got) {
			w.cancelUpload(ctx, loc)
			kept := "the bytes sent"
			if rr, ok := ring.(*replayRing); ok {
				kept = fmt.Sprintf("the %d bytes kept to resume", len(rr.buf))
			}
			return fmt.Errorf("upload broke at byte %d (%v); the registry holds %d bytes, outside %s: %w", consumed, oneLine(err.Error()), got, kept, core.ErrUnavailable)
		}
		loc, pos = next, got
	}
	var probe [1]byte
	if direct {
		// src stopped before the last PATCH; net/http checked that the
		// file ends where that PATCH did.
	} else if m, _ := io.ReadFull(src, probe[:]); m > 0 {
		w.cancelUpload(ctx, loc)
		return &core.SizeMismatchError{Digest: desc.Digest, Expected: desc.Size, Actual: desc.Size + 1}
	}
	if src.err != nil {
		w.cancelUpload(ctx, loc)
		return src.err
	}
	u, err := withDigest(loc, desc.Digest)
	if err != nil {
		return err
	}
	w.renewToken(ctx, loc)
	resp, err := w.do(ctx, http.MethodPut, u, nil, 0, nil)
	if err != nil || resp.StatusCode == http.StatusNotFound {
		// The completing PUT may have worked with its answer lost (a retry
		// then finds no session): the blob existing settles it.
		if resp != nil {
			resp.Body.Close()
		}
		if has, herr := w.HasBlob(ctx, desc); herr == nil && has {
			return nil
		}
		if err == nil {
			err = &httpError{status: http.StatusNotFound, detail: "upload session gone"}
		}
		return err
	}
	return checkCreated(resp, desc)
}

// maxShrinks bounds how many times one upload makes its chunks smaller;
// minChunkFloor is the smallest chunk it goes down to.
const (
	maxShrinks    = 8
	minChunkFloor = 16 << 10
)

// chunkSize is the size of the next upload PATCH: ChunkSize, or the most the
// registry took when it refused larger ones, and at least minChunk.
func (w *Writer) chunkSize(minChunk int64) int64 {
	size := w.p.ChunkSize
	if c := w.conn.chunkCap.Load(); c > 0 && c < size {
		size = c
	}
	return max(size, minChunk)
}

// lowerChunkCap records that the registry takes chunks of at most n bytes.
func (c *conn) lowerChunkCap(n int64) {
	for {
		old := c.chunkCap.Load()
		if old > 0 && old <= n {
			return
		}
		if c.chunkCap.CompareAndSwap(old, n) {
			return
		}
	}
}

// capHint finds the limit a registry names when it refuses a chunk: GHCR
// says "exceeds the maximum permissible limit of 4.00MiB".
// (Compiled on first use: the plugin starts on every command.)
var capHint = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)limit of ([0-9]+(?:\.[0-9]+)?) ?([KMG]i?B|bytes|B)\b`)
})

// tooLarge reports whether err refused a PATCH of size bytes for its size
// (413, or a 416 or 400 that says so) and, if so, the size to try next: the
// limit the registry named, else half. ok is false when the chunk cannot
// get smaller (under minChunk or minChunkFloor).
func tooLarge(err error, size, minChunk int64) (next int64, ok bool) {
	var he *httpError
	if !errors.As(err, &he) {
		return 0, false
	}
	detail := strings.ToLower(he.detail)
	switch {
	case he.status == http.StatusRequestEntityTooLarge:
	case (he.status == http.StatusRequestedRangeNotSatisfiable || he.status == http.StatusBadRequest) &&
		(strings.Contains(detail, "too large") || strings.Contains(detail, "exceeds")):
	default:
		return 0, false
	}
	next = size / 2
	if m := capHint().FindStringSubmatch(he.detail); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		unit := map[string]float64{"b": 1, "bytes": 1, "kb": 1e3, "kib": 1 << 10, "mb": 1e6, "mib": 1 << 20, "gb": 1e9, "gib": 1 << 30}[strings.ToLower(m[2])]
		if n := int64(v * unit); n > 0 && n < size {
			next = n
		}
	}
	if next < max(minChunk, minChunkFloor) {
		return 0, false
	}
	return next, true
}

// resumable reports whether a failed PATCH is worth resuming.
func resumable(err error) bool {
	var he *httpError
	if errors.As(err, &he) {
		return errors.Is(he, core.ErrUnavailable)
	}
	return true // a broken connection
}

// patch sends size bytes of body at offset start and returns the next
// upload URL.
func (w *Writer) patch(ctx context.Context, loc string, start, size int64, body io.Reader) (string, error) {
	hdr := http.Header{
		"Content-Type":  {"application/octet-stream"},
		"Content-Range": {fmt.Sprintf("%d-%d", start, start+size-1)},
	}
	resp, err := w.do(ctx, http.MethodPatch, loc, body, size, hdr)
	if err != nil {
		return "", err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", responseError(resp)
	}
	resp.Body.Close()
	// The Range of the answer is not checked against the bytes sent: ECR's
	// stays at the end of the first chunk while it stores every later one
	// (aws/containers-roadmap#2831). A registry that really dropped bytes
	// refuses the next chunk's offset, or the digest when the upload is
	// committed, so nothing wrong becomes visible.
	if resp.Header.Get("Location") == "" {
		return loc, nil
	}
	return location(resp)
}

// rangeEnd parses an upload Range header "0-LAST" into the number of bytes
// held ("0-0" is how distribution reports an empty upload).
func rangeEnd(v string) (int64, bool) {
	v = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), "bytes="))
	s, e, ok := strings.Cut(v, "-")
	if !ok || strings.TrimSpace(s) != "0" {
		return 0, false
	}
	last, err := strconv.ParseInt(strings.TrimSpace(e), 10, 64)
	if err != nil || last < 0 {
		return 0, false
	}
	if last == 0 {
		return 0, true
	}
	return last + 1, true
}

// uploadStatus asks how many bytes an upload session holds.
func (w *Writer) uploadStatus(ctx context.Context, loc string) (int64, string, error) {
	resp, err := w.do(ctx, http.MethodGet, loc, nil, 0, nil)
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return 0, "", responseError(resp)
	}
	resp.Body.Close()
	got, ok := rangeEnd(resp.Header.Get("Range"))
	if !ok {
		return 0, "", fmt.Errorf("upload status without a usable Range header (%q): %w", resp.Header.Get("Range"), core.ErrUnsupported)
	}
	next := loc
	if resp.Header.Get("Location") != "" {
		if next, err = location(resp); err != nil {
			return 0, "", err
		}
	}
	return got, next, nil
}

// MountBlob implements pluginapi.Mounter: a cross-repository mount when
// fromLocation is on the same registry. It reports false when the registry
// starts an upload instead (the session is cancelled) or refuses access to
// the source.
func (w *Writer) MountBlob(ctx context.Context, desc ocispec.Descriptor, fromLocation string) (bool, error) {
	_, fromHost, fromRepo, err := SplitLocation(fromLocation)
	if err != nil {
		return false, err
	}
	if fromHost != w.host {
		return false, nil
	}
	if fromRepo == w.repo {
		return w.HasBlob(ctx, desc)
	}
	step := "mount blob " + desc.Digest.String() + " from " + fromRepo
	if err := desc.Digest.Validate(); err != nil {
		return false, w.fail(step, fmt.Errorf("invalid digest: %v: %w", err, core.ErrInvalid))
	}
	ctx = w.scoped(ctx, auth.ScopeRepository(fromRepo, auth.ActionPull))
	q := "?mount=" + url.QueryEscape(desc.Digest.String()) + "&from=" + url.QueryEscape(fromRepo)
	up, err := w.startUpload(ctx, q)
	if errors.Is(err, core.ErrUnauthorized) || errors.Is(err, core.ErrDenied) {
		// Registries answer 401 when the token lacks pull on the source
		// (distribution does); copying the bytes may still be allowed.
		return false, nil
	}
	if err != nil {
		return false, w.fail(step, err)
	}
	if up.created {
		return true, nil
	}
	// The registry opened an upload instead (the source lacks the blob, or
	// mounts are off, as on ECR by default): keep it for the upload of
	// these bytes that follows, as crane does, instead of abandoning it and
	// starting another (two requests a blob). Close abandons one not used.
	if old, loaded := w.pending.Swap(desc.Digest, up); loaded {
		w.cancelUpload(ctx, old.(upload).loc)
	}
	return false, nil
}

// PutManifest implements pluginapi.Destination: one PUT by tag (or by
// digest when there is no tag) stores the manifest. A manifest with a
// subject is stored by digest through oras-go first, which maintains the
// referrers tag index on registries without the referrers API, then
// tagged.
func (w *Writer) PutManifest(ctx context.Context, desc ocispec.Descriptor, raw []byte, ref string) error {
	step := "push manifest " + desc.Digest.String()
	if err := content.VerifyBytes(raw, desc); err != nil {
		return w.fail(step, err)
	}
	if desc.MediaType == "" {
		mt, err := manifest.DetectMediaType(raw)
		if err != nil {
			return w.fail(step, err)
		}
		desc.MediaType = mt
	}
	var tag string
	if ref != "" {
		t, d, err := parseRef(ref)
		if err != nil {
			return w.fail(step, err)
		}
		if d != "" && d != desc.Digest {
			return w.fail(step, fmt.Errorf("reference %s is not the manifest's digest: %w", d, core.ErrInvalid))
		}
		tag = t
	}
	ctx = w.scoped(ctx)
	subject, ok := subjectOf(raw)
	if !ok {
		// One PUT stores the manifest and points the tag at it; the
		// registry's Docker-Content-Digest is checked against desc.
		if tag == "" {
			return w.putManifestAt(ctx, "push manifest", desc, raw, desc.Digest.String())
		}
		return w.putTagged(ctx, desc, raw, tag)
	}
	repo, err := w.repository(ctx)
	if err != nil {
		return err
	}
	if err := w.pushWithSubject(ctx, repo, desc, raw, subject); err != nil {
		if indexTag := referrersTagOf(subject); indexTag != "" && failedAt(err, indexTag) {
			step = "add manifest " + desc.Digest.String() + " to the referrers index " + indexTag + " of its subject"
		}
		return w.fail(step, err)
	}
	if tag == "" {
		return nil
	}
	return w.putTagged(ctx, desc, raw, tag)
}

// subjectOf returns the subject a manifest names, if it names one: oras-go
// must then push it by digest to keep the referrers tag index of
// registries without the referrers API. A manifest that does not parse is
// left to oras-go too (ok, with no digest).
func subjectOf(raw []byte) (digest.Digest, bool) {
	m, err := manifest.Parse(raw, "")
	if err != nil {
		return "", true
	}
	if m.Subject == nil {
		return "", false
	}
	return m.Subject.Digest, true
}

// referrersIndexRetries is how many times a manifest push whose referrers
// tag index the registry refused for an entry it did not know is done
// again; referrersIndexRetryDelay the first wait.
const (
	referrersIndexRetries    = 3
	referrersIndexRetryDelay = 50 * time.Millisecond
)

// pushWithSubject stores a manifest naming subject through oras-go, which
// on a registry without the referrers API then adds it to the subject's
// referrers tag index: it reads the index, merges the manifest in and
// pushes the result under the tag. The registry checks the entries of an
// index pushed, and docker-registry 2.x answers MANIFEST_BLOB_UNKNOWN for
// one that another client writes again at that moment (it rewrites a
// manifest's link file in place): the push is done again, which reads the
// index again and merges into what it holds then. An entry the registry
// really lacks fails every time.
func (w *Writer) pushWithSubject(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, raw []byte, subject digest.Digest) error {
	indexTag := referrersTagOf(subject)
	for attempt := 0; ; attempt++ {
		err := repo.Manifests().Push(ctx, desc, bytes.NewReader(raw))
		if err == nil || attempt == referrersIndexRetries || indexTag == "" || !failedAt(err, indexTag) || !hasErrorCode(err, "MANIFEST_BLOB_UNKNOWN") {
			return err
		}
		t := time.NewTimer(time.Duration(attempt+1) * referrersIndexRetryDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// referrersTagOf is the tag of subject's index in the referrers tag schema
// ("sha256-HEX"), "" for an invalid digest.
func referrersTagOf(subject digest.Digest) string {
	if subject.Validate() != nil {
		return ""
	}
	return subject.Algorithm().String() + "-" + subject.Encoded()
}

// failedAt reports whether err is a registry's answer to a manifest PUT
// under reference.
func failedAt(err error, reference string) bool {
	var er *errcode.ErrorResponse
	return errors.As(err, &er) && er.Method == http.MethodPut && er.URL != nil && strings.HasSuffix(er.URL.Path, "/manifests/"+reference)
}

// hasErrorCode reports whether err is a registry's answer carrying code.
func hasErrorCode(err error, code string) bool {
	var er *errcode.ErrorResponse
	if !errors.As(err, &er) {
		return false
	}
	for _, e := range er.Errors {
		if e.Code == code {
			return true
		}
	}
	return false
}

// putTagged PUTs the manifest under tag.
func (w *Writer) putTagged(ctx context.Context, desc ocispec.Descriptor, raw []byte, tag string) error {
	return w.putManifestAt(ctx, "tag "+tag+" as", desc, raw, tag)
}

// putManifestAt PUTs the manifest under reference (a tag or its digest).
// Any 2xx is success, as docker, skopeo and crane take it: Quay answers 202.
func (w *Writer) putManifestAt(ctx context.Context, what string, desc ocispec.Descriptor, raw []byte, reference string) error {
	step := what + " " + desc.Digest.String()
	u, err := w.url(ctx, "/manifests/"+reference)
	if err != nil {
		return err
	}
	resp, err := w.do(ctx, http.MethodPut, u, bytes.NewReader(raw), int64(len(raw)), http.Header{"Content-Type": {desc.MediaType}})
	if err != nil {
		return w.fail(step, err)
	}
	if err := checkStored(resp, desc); err != nil {
		return w.fail(step, typeRejection(err, desc.MediaType))
	}
	return nil
}

// typeRejection marks a manifest PUT's refusal that names the manifest's
// type as the reason (the host may then write the image in the other
// format), as containers/image reads them: 415 Unsupported Media Type
// (zot without Docker compatibility), MANIFEST_INVALID (zot's body,
// OpenShift without schema 2), TAG_INVALID (docker/distribution) and
// ECR's UNSUPPORTED "Invalid JSON syntax".
func typeRejection(err error, mediaType string) error {
	var he *httpError
	if !errors.As(err, &he) {
		return err
	}
	if he.status == http.StatusUnsupportedMediaType || he.hasCode("MANIFEST_INVALID") || he.hasCode("TAG_INVALID") ||
		he.hasCode("UNSUPPORTED") && strings.Contains(he.detail, "Invalid JSON syntax") {
		return &rejectedError{err: err, mediaType: mediaType}
	}
	return err
}

// rejectedError is a manifest refused for its media type.
type rejectedError struct {
	err       error
	mediaType string
}

func (e *rejectedError) Error() string {
	return fmt.Sprintf("%v (refused as %s)", e.err, e.mediaType)
}

func (e *rejectedError) Unwrap() []error { return []error{core.ErrManifestRejected, e.err} }

// checkStored expects the 2xx of a manifest PUT, and the registry's digest,
// when it sends one, to be the manifest's.
func checkStored(resp *http.Response, desc ocispec.Descriptor) error {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return responseError(resp)
	}
	resp.Body.Close()
	return checkDigestHeader(resp, desc)
}

// maxRetagScan bounds the tags examined when a registry cannot delete a tag
// alone (see Delete).
const maxRetagScan = 500

// restoreTimeout bounds putting back the tags a manifest deletion took
// along (see Delete), which goes on when the caller gives up.
const restoreTimeout = 2 * time.Minute

// Delete implements pluginapi.Deleter. A digest deletes the manifest (and
// so every tag pointing at it). A tag is deleted alone: with the OCI 1.1
// tag DELETE where the registry supports it; elsewhere (docker-registry 2.x
// answers 400) the manifest is deleted by digest and the repository's other
// tags that pointed at it are put back.
func (w *Writer) Delete(ctx context.Context, ref string) error {
	ctx = w.scoped(ctx, auth.ScopeRepository(w.repo, auth.ActionPull, auth.ActionPush, auth.ActionDelete))
	tag, _, err := parseRef(ref)
	if err != nil {
		return w.fail("delete "+ref, err)
	}
	desc, err := w.Resolve(ctx, ref)
	if err != nil {
		return err
	}
	if tag == "" {
		return w.deleteManifest(ctx, desc)
	}
	step := "delete tag " + tag
	u, err := w.url(ctx, "/manifests/"+tag)
	if err != nil {
		return err
	}
	resp, err := w.do(ctx, http.MethodDelete, u, nil, 0, nil)
	if err != nil {
		return w.fail(step, err)
	}
	switch resp.StatusCode {
	case http.StatusAccepted, http.StatusOK, http.StatusNoContent:
		resp.Body.Close()
		return nil
	case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented:
		resp.Body.Close()
	default:
		return w.fail(step, responseError(resp))
	}
	// No tag deletion: delete the manifest, then restore the other tags.
	// Not when an index of the repository lists the manifest: deleting it
	// would break that index.
	others, parents, err := w.tagsPointingAt(ctx, desc.Digest, tag)
	if err != nil {
		return w.fail(step, err)
	}
	if len(parents) > 0 {
		return w.fail(step, fmt.Errorf("the registry cannot delete a tag alone, and the manifest %s it names is an image of the index tagged %s, which deleting the manifest would break; delete that index's tags first, or delete by digest (@%s) knowing it breaks them: %w",
			desc.Digest, strings.Join(parents, ", "), desc.Digest, core.ErrUnsupported))
	}
	var raw []byte
	if len(others) > 0 {
		if raw, err = w.GetManifest(ctx, desc); err != nil {
			return err
		}
	}
	// From the deletion on, the other tags are gone with the manifest: the
	// deletion and their restoring go on even if the caller gives up
	// meanwhile (a deletion the client stops waiting for may still happen).
	if err := ctx.Err(); err != nil {
		return w.fail(step, err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), restoreTimeout)
	defer cancel()
	if err := w.deleteManifest(ctx, desc); err != nil {
		return err
	}
	for _, t := range others {
		u, err := w.url(ctx, "/manifests/"+t)
		if err != nil {
			return err
		}
		resp, err := w.do(ctx, http.MethodPut, u, bytes.NewReader(raw), int64(len(raw)), http.Header{"Content-Type": {desc.MediaType}})
		if err == nil {
			err = checkStored(resp, desc)
		}
		if err != nil {
			return w.fail(fmt.Sprintf("%s: restore tag %s (the registry cannot delete a tag alone; %s was deleted)", step, t, desc.Digest), err)
		}
	}
	return nil
}

// tagsPointingAt lists the tags other than except that resolve to d.
func (w *Writer) tagsPointingAt(ctx context.Context, d digest.Digest, except string) (found, parents []string, err error) {
	tags, err := w.ListTags(ctx)
	if errors.Is(err, core.ErrNotFound) {
		return nil, nil, nil // no tags left
	}
	if err != nil {
		return nil, nil, err
	}
	if len(tags) > maxRetagScan {
		return nil, nil, fmt.Errorf("the registry cannot delete a tag alone and the repository has %d tags, too many to find those sharing the manifest; delete by digest (@%s) to remove the manifest with all its tags: %w", len(tags), d, core.ErrUnsupported)
	}
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, 8)
	)
	for _, t := range tags {
		if t == except {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			desc, err := w.Resolve(ctx, t)
			listed := false
			if err == nil && desc.Digest != d && manifest.IsIndex(desc.MediaType) {
				listed, err = w.indexLists(ctx, desc, d)
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && desc.Digest == d:
				found = append(found, t)
			case listed:
				parents = append(parents, t)
			case err != nil && !errors.Is(err, core.ErrNotFound) && first == nil:
				first = err
			}
		}()
	}
	wg.Wait()
	sort.Strings(found)
	sort.Strings(parents)
	return found, parents, first
}

// indexLists reports whether the index desc lists manifest d.
func (w *Writer) indexLists(ctx context.Context, desc ocispec.Descriptor, d digest.Digest) (bool, error) {
	raw, err := w.GetManifest(ctx, desc)
	if err != nil {
		return false, err
	}
	m, err := manifest.Parse(raw, desc.MediaType)
	if err != nil {
		return false, err
	}
	for _, e := range m.Manifests {
		if e.Digest == d {
			return true, nil
		}
	}
	return false, nil
}

func (w *Writer) deleteManifest(ctx context.Context, desc ocispec.Descriptor) error {
	step := "delete manifest " + desc.Digest.String()
	repo, err := w.repository(ctx)
	if err != nil {
		return err
	}
	if err := repo.Delete(ctx, desc); err != nil {
		err = w.convert(err)
		if errors.Is(err, core.ErrUnsupported) {
			err = fmt.Errorf("the registry does not allow deletes (distribution needs storage.delete.enabled): %w", err)
		}
		return w.fail(step, err)
	}
	return nil
}
