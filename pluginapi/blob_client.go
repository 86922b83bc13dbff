package pluginapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"

	"github.com/stevedore-oci/stevedore/core"
	transportv1 "github.com/stevedore-oci/stevedore/pluginapi/proto/v1"
)

// Host end of blob transfers. Over the data plane, the RPC runs in a
// goroutine owned by the transfer while the bytes flow over the socket; the
// transfer ends only after the RPC has returned, and the RPC's status decides
// whether the bytes were a whole blob.

// SmallBlob is the size up to which a blob's bytes go over the plugin's
// gRPC connection rather than the data plane: a config or a manifest-sized
// blob moves in one or two messages, where the data plane would first make
// its socket (on the first transfer of a run) and have the plugin dial and
// present a token.
const SmallBlob = 256 << 10

// small reports whether n known bytes go over gRPC (see SmallBlob).
func small(n int64) bool { return n > 0 && n <= SmallBlob }

// rpcResult is the outcome of a GetBlob or PutBlob RPC.
type rpcResult struct {
	size int64 // GetBlob: bytes the plugin wrote
	err  error
}

// GetBlob implements Source. The reader must be closed. Its Read returns the
// plugin's error, not io.EOF, when the plugin failed while sending.
func (e *RemoteEndpoint) GetBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	if err := e.need(CapSource); err != nil {
		return nil, err
	}
	b, err := encodeDescriptor(desc)
	if err != nil {
		return nil, err
	}
	if e.p.streams || small(desc.Size-offset) {
		return e.getBlobStream(ctx, b, offset)
	}
	dp, err := e.p.dataPlane()
	if err != nil {
		return nil, err
	}
	t, err := dp.issue()
	if err != nil {
		return nil, err
	}
	callCtx, cancel := context.WithCancel(ctx)
	done := make(chan rpcResult, 1)
	go func() {
		resp, err := e.p.client.GetBlob(callCtx, &transportv1.GetBlobRequest{
			Handle: e.handle, DescriptorJson: b, Offset: offset, DataPlane: dp.request(t),
		})
		done <- rpcResult{size: resp.GetSize(), err: fromStatus(err)}
	}()
	conn, res, err := awaitConn(ctx, t, done)
	if err != nil {
		dp.revoke(t)
		cancel()
		if res == nil {
			<-done
		}
		return nil, err
	}
	r := &planeReader{ctx: ctx, conn: conn, desc: desc, done: done, res: res, cancel: cancel}
	r.stop = context.AfterFunc(ctx, func() { conn.Close() })
	return r, nil
}

// awaitConn waits until the plugin's connection for t is admitted. It fails
// on the RPC's error, on ctx, or when the token expires. res is the RPC's
// result if it was received while waiting.
func awaitConn(ctx context.Context, t *ticket, done <-chan rpcResult) (conn net.Conn, res *rpcResult, err error) {
	timer := time.NewTimer(time.Until(t.expires))
	defer timer.Stop()
	for {
		select {
		case c := <-t.conn:
			return c, res, nil
		case r := <-done:
			res = &r
			if r.err != nil {
				return nil, res, r.err
			}
			// The RPC succeeded, so the plugin has connected; its connection
			// may still be in admission. Give that a bounded moment.
			done = nil
			timer.Reset(tokenReadTimeout)
		case <-ctx.Done():
			return nil, res, ctx.Err()
		case <-timer.C:
			return nil, res, fmt.Errorf("data plane: plugin did not connect: %w", core.ErrUnavailable)
		}
	}
}

// planeReader reads a blob from a data-plane connection.
type planeReader struct {
	ctx    context.Context
	conn   net.Conn
	desc   ocispec.Descriptor
	done   <-chan rpcResult
	res    *rpcResult
	cancel context.CancelFunc
	stop   func() bool

	n         int64
	err       error
	closeOnce sync.Once
}

func (r *planeReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.conn.Read(p)
	r.n += int64(n)
	if err == nil {
		return n, nil
	}
	// The connection ended: the RPC's status is the verdict.
	res := r.result()
	switch {
	case r.ctx.Err() != nil:
		r.err = r.ctx.Err()
	case res.err != nil:
		r.err = res.err
	case err != io.EOF:
		r.err = fmt.Errorf("blob %s: data plane: %v: %w", r.desc.Digest, err, core.ErrUnavailable)
	case r.n != res.size:
		r.err = fmt.Errorf("blob %s: data plane delivered %d of the %d bytes the plugin sent: %w",
			r.desc.Digest, r.n, res.size, io.ErrUnexpectedEOF)
	default:
		r.err = io.EOF
	}
	return n, r.err
}

// result waits for the RPC, cancelling it if ctx ends first.
func (r *planeReader) result() rpcResult {
	if r.res == nil {
		var res rpcResult
		select {
		case res = <-r.done:
		case <-r.ctx.Done():
			r.cancel()
			res = <-r.done
		}
		r.res = &res
	}
	return *r.res
}

// Close ends the transfer (cancelling the RPC if the blob was not read to
// the end) and waits for the RPC to return.
func (r *planeReader) Close() error {
	r.closeOnce.Do(func() {
		r.stop()
		r.conn.Close()
		r.cancel()
		if r.res == nil {
			<-r.done
		}
	})
	return nil
}

func (e *RemoteEndpoint) getBlobStream(ctx context.Context, descJSON []byte, offset int64) (io.ReadCloser, error) {
	callCtx, cancel := context.WithCancel(ctx)
	stream, err := e.p.client.GetBlobStream(callCtx, &transportv1.GetBlobStreamRequest{
		Handle: e.handle, DescriptorJson: descJSON, Offset: offset,
	})
	if err != nil {
		cancel()
		return nil, fromStatus(err)
	}
	// Receive the first chunk now so that "not found" and the like come from
	// GetBlob, as with the data plane, rather than from the first Read.
	first, err := stream.Recv()
	if err != nil && err != io.EOF {
		cancel()
		return nil, fromStatus(err)
	}
	sr := &streamReader{stream: stream, cancel: cancel}
	if err == io.EOF {
		sr.err = io.EOF
	} else {
		sr.buf = first.GetData()
	}
	return sr, nil
}

// streamReader reads a blob from a GetBlobStream call. gRPC tells a clean end
// (io.EOF) from a failure (a status), so no extra verdict is needed.
type streamReader struct {
	stream grpc.ServerStreamingClient[transportv1.BlobChunk]
	cancel context.CancelFunc
	buf    []byte
	err    error
}

func (s *streamReader) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		m, err := s.stream.Recv()
		if err != nil {
			if err == io.EOF {
				s.err = io.EOF
			} else {
				s.err = fromStatus(err)
			}
			continue
		}
		s.buf = m.GetData()
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

func (s *streamReader) Close() error {
	s.cancel()
	return nil
}

// PutBlob implements Destination. r must yield exactly desc.Size bytes; more
// or fewer fail with a *core.SizeMismatchError and nothing is stored.
func (e *RemoteEndpoint) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	if err := e.need(CapDest); err != nil {
		return err
	}
	if desc.Size < 0 {
		return fmt.Errorf("blob %s: negative size %d: %w", desc.Digest, desc.Size, core.ErrInvalid)
	}
	b, err := encodeDescriptor(desc)
	if err != nil {
		return err
	}
	if e.p.streams || small(desc.Size) {
		return e.putBlobStream(ctx, b, desc, r)
	}
	dp, err := e.p.dataPlane()
	if err != nil {
		return err
	}
	t, err := dp.issue()
	if err != nil {
		return err
	}
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan rpcResult, 1)
	go func() {
		_, err := e.p.client.PutBlob(callCtx, &transportv1.PutBlobRequest{
			Handle: e.handle, DescriptorJson: b, DataPlane: dp.request(t), HostVerified: HostVerified(ctx),
		})
		done <- rpcResult{err: fromStatus(err)}
	}()
	conn, res, err := awaitConn(ctx, t, done)
	if err != nil {
		dp.revoke(t)
		cancel()
		if res == nil {
			<-done
		}
		return err
	}
	defer conn.Close()
	if res != nil {
		return res.err // the plugin finished without needing the bytes
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	localErr, writeErr := sendExact(desc, r, func(p []byte) error {
		_, err := conn.Write(p)
		return err
	})
	if localErr != nil || writeErr != nil {
		conn.Close()
		if localErr != nil {
			cancel() // nothing may be stored from a short or failed stream
		}
	} else if err := conn.(*net.UnixConn).CloseWrite(); err != nil {
		writeErr = err
	} else if f := unreadWatch(ctx); f != nil {
		stopWatch := make(chan struct{})
		watched := make(chan struct{})
		go func() { defer close(watched); watchUnread(conn.(*net.UnixConn), f, stopWatch) }()
		defer func() { close(stopWatch); <-watched }()
	}
	rres := <-done
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case localErr != nil:
		return localErr
	case rres.err != nil:
		return rres.err
	}
	// The plugin succeeded. A write error then only means it stopped
	// reading early, which a destination that already holds the verified
	// blob may do.
	return nil
}

// sendExact feeds desc.Size bytes of r to send in chunks of up to 1 MiB.
// localErr is a failure of r (read error, too few or too many bytes);
// sendErr is a failure of send, after which the plugin's status says why.
func sendExact(desc ocispec.Descriptor, r io.Reader, send func([]byte) error) (localErr, sendErr error) {
	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	buf := *bufp
	var sent int64
	for {
		// Read at most one byte past the end, to catch an over-long reader.
		want := min(int64(len(buf)), desc.Size-sent+1)
		n, err := r.Read(buf[:want])
		if sent+int64(n) > desc.Size {
			return &core.SizeMismatchError{Digest: desc.Digest, Expected: desc.Size, Actual: sent + int64(n)}, nil
		}
		if n > 0 && err == nil && sent+int64(n) == desc.Size {
			// The plugin stores the blob once it has desc.Size bytes, so
			// make sure r really ends here before it gets the last chunk.
			err = probeEOF(r)
			if err != io.EOF {
				if err == nil {
					return &core.SizeMismatchError{Digest: desc.Digest, Expected: desc.Size, Actual: desc.Size + 1}, nil
				}
				return fmt.Errorf("blob %s: %w", desc.Digest, err), nil
			}
		}
		if n > 0 {
			if serr := send(buf[:n]); serr != nil {
				return nil, serr
			}
			sent += int64(n)
		}
		switch {
		case err == io.EOF:
			if sent != desc.Size {
				return &core.SizeMismatchError{Digest: desc.Digest, Expected: desc.Size, Actual: sent}, nil
			}
			return nil, nil
		case err != nil:
			return fmt.Errorf("blob %s: %w", desc.Digest, err), nil
		}
	}
}

// probeEOF returns io.EOF if r has no more bytes, nil if it has, or r's error.
func probeEOF(r io.Reader) error {
	var b [1]byte
	for range 100 {
		n, err := r.Read(b[:])
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

func (e *RemoteEndpoint) putBlobStream(ctx context.Context, descJSON []byte, desc ocispec.Descriptor, r io.Reader) error {
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := e.p.client.PutBlobStream(callCtx)
	if err != nil {
		return fromStatus(err)
	}
	sendErr := stream.Send(&transportv1.PutBlobStreamRequest{Handle: e.handle, DescriptorJson: descJSON, HostVerified: HostVerified(ctx)})
	var localErr error
	if sendErr == nil {
		localErr, sendErr = sendExact(desc, r, func(p []byte) error {
			return stream.Send(&transportv1.PutBlobStreamRequest{Data: p})
		})
	}
	if localErr != nil {
		cancel()
		return localErr
	}
	// io.EOF from Send means the plugin ended the call; CloseAndRecv has
	// its status. Any other Send error is the call's own status.
	if sendErr != nil && !errors.Is(sendErr, io.EOF) {
		return fromStatus(sendErr)
	}
	_, err = stream.CloseAndRecv()
	return fromStatus(err)
}
