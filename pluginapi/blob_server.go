package pluginapi

import (
	"context"
	"errors"
	"fmt"
	"io"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc"

	"github.com/stevedore-oci/stevedore/core"
	transportv1 "github.com/stevedore-oci/stevedore/pluginapi/proto/v1"
)

// Plugin end of blob transfers. The RPC's status is the verdict: a transport
// that fails half way through a blob returns its error here, and the host
// reports that error instead of the end of the byte stream.

func (s *grpcServer) GetBlob(ctx context.Context, req *transportv1.GetBlobRequest) (*transportv1.GetBlobResponse, error) {
	if !s.dataPlane {
		return nil, toStatus(fmt.Errorf("blob data plane is disabled in this plugin: %w", core.ErrUnsupported))
	}
	rc, err := s.openBlob(ctx, req, req.GetOffset())
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	// Dial only once the blob is open, so "not found" needs no connection.
	conn, err := dialDataPlane(ctx, req.GetDataPlane())
	if err != nil {
		return nil, toStatus(err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	n, err := io.CopyBuffer(conn, rc, *bufp)
	if err != nil {
		if ctx.Err() != nil {
			return nil, toStatus(ctx.Err())
		}
		return nil, toStatus(err)
	}
	return &transportv1.GetBlobResponse{Size: n}, nil
}

func (s *grpcServer) GetBlobStream(req *transportv1.GetBlobStreamRequest, stream grpc.ServerStreamingServer[transportv1.BlobChunk]) error {
	ctx := stream.Context()
	rc, err := s.openBlob(ctx, req, req.GetOffset())
	if err != nil {
		return err
	}
	defer rc.Close()
	bufp := chunkPool.Get().(*[]byte)
	defer chunkPool.Put(bufp)
	buf := *bufp
	for {
		// Fill whole chunks: sources such as HTTP bodies return small reads,
		// and per-message overhead dominates below a few hundred KiB.
		n, err := io.ReadFull(rc, buf)
		if n > 0 {
			// SendMsg serialises the message before returning, so buf may be
			// reused.
			if serr := stream.Send(&transportv1.BlobChunk{Data: buf[:n]}); serr != nil {
				return serr
			}
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return nil
		case err != nil:
			if ctx.Err() != nil {
				return toStatus(ctx.Err())
			}
			return toStatus(err)
		}
	}
}

func (s *grpcServer) openBlob(ctx context.Context, req descRequest, offset int64) (io.ReadCloser, error) {
	src, desc, err := endpointFor[Source](s, req, CapSource)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, toStatus(fmt.Errorf("blob %s: negative offset %d: %w", desc.Digest, offset, core.ErrInvalid))
	}
	rc, err := src.GetBlob(ctx, desc, offset)
	if err != nil {
		return nil, toStatus(err)
	}
	return rc, nil
}

func (s *grpcServer) PutBlob(ctx context.Context, req *transportv1.PutBlobRequest) (*transportv1.PutBlobResponse, error) {
	if !s.dataPlane {
		return nil, toStatus(fmt.Errorf("blob data plane is disabled in this plugin: %w", core.ErrUnsupported))
	}
	dst, desc, err := s.blobDestination(req)
	if err != nil {
		return nil, err
	}
	conn, err := dialDataPlane(ctx, req.GetDataPlane())
	if err != nil {
		return nil, toStatus(err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if req.GetHostVerified() {
		ctx = WithHostVerified(ctx)
	}
	if err := dst.PutBlob(ctx, desc, newSizedReader(ctx, conn, desc)); err != nil {
		return nil, toStatus(err)
	}
	return &transportv1.PutBlobResponse{}, nil
}

func (s *grpcServer) PutBlobStream(stream grpc.ClientStreamingServer[transportv1.PutBlobStreamRequest, transportv1.PutBlobResponse]) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if err != nil {
		if err == io.EOF {
			return toStatus(fmt.Errorf("put blob stream: no header: %w", core.ErrInvalid))
		}
		return err
	}
	dst, desc, err := s.blobDestination(first)
	if err != nil {
		return err
	}
	cr := &chunkReader{buf: first.GetData(), recv: func() ([]byte, error) {
		m, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		return m.GetData(), nil
	}}
	if first.GetHostVerified() {
		ctx = WithHostVerified(ctx)
	}
	if err := dst.PutBlob(ctx, desc, newSizedReader(ctx, cr, desc)); err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(&transportv1.PutBlobResponse{})
}

func (s *grpcServer) blobDestination(req descRequest) (Destination, ocispec.Descriptor, error) {
	dst, desc, err := endpointFor[Destination](s, req, CapDest)
	if err != nil {
		return nil, desc, err
	}
	if desc.Size < 0 {
		return nil, desc, toStatus(fmt.Errorf("blob %s: negative size %d: %w", desc.Digest, desc.Size, core.ErrInvalid))
	}
	return dst, desc, nil
}

// sizedReader hands a transport exactly desc.Size bytes: io.EOF at the size,
// and an error (never io.EOF) when the host's stream ends early, so a
// cancelled or broken transfer cannot look like a complete short blob.
type sizedReader struct {
	ctx  context.Context
	r    io.Reader
	desc ocispec.Descriptor
	left int64
}

func newSizedReader(ctx context.Context, r io.Reader, desc ocispec.Descriptor) *sizedReader {
	return &sizedReader{ctx: ctx, r: r, desc: desc, left: desc.Size}
}

func (s *sizedReader) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= int64(n)
	if err == nil || (err == io.EOF && s.left == 0) {
		if s.left == 0 {
			return n, io.EOF
		}
		return n, nil
	}
	if s.ctx.Err() != nil {
		return n, s.ctx.Err()
	}
	if err == io.EOF {
		return n, fmt.Errorf("blob %s: stream from host ended after %d of %d bytes: %w",
			s.desc.Digest, s.desc.Size-s.left, s.desc.Size, io.ErrUnexpectedEOF)
	}
	return n, fmt.Errorf("blob %s: reading from host: %w", s.desc.Digest, err)
}

// chunkReader turns gRPC messages into a byte stream.
type chunkReader struct {
	buf  []byte
	recv func() ([]byte, error)
	err  error
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		c.buf, c.err = c.recv()
		if c.err != nil && !errors.Is(c.err, io.EOF) {
			c.err = fromStatus(c.err)
		}
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}
