package pluginapi

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	transportv1 "github.com/stevedore-oci/stevedore/pluginapi/proto/v1"
)

// grpcServer is the plugin end: it serves a Plugin over gRPC and keeps the
// endpoints the host opened, by handle. Calls may run concurrently, also on
// one endpoint, so endpoints must be safe for concurrent use. Blob RPCs live
// in blob_server.go.
type grpcServer struct {
	transportv1.UnimplementedTransportServer

	impl      Plugin
	dataPlane bool // serve GetBlob/PutBlob over the host's unix socket

	mu        sync.RWMutex
	next      uint64
	endpoints map[uint64]*openEndpoint
}

type openEndpoint struct {
	ep   Endpoint
	name string // "transport:location", for error messages
}

func newGRPCServer(p Plugin, dataPlane bool) *grpcServer {
	return &grpcServer{impl: p, dataPlane: dataPlane, endpoints: map[uint64]*openEndpoint{}}
}

func (s *grpcServer) Info(context.Context, *transportv1.InfoRequest) (*transportv1.InfoResponse, error) {
	served := servedVersions()
	versions := make([]int32, 0, len(served))
	for _, v := range served {
		versions = append(versions, int32(v))
	}
	return &transportv1.InfoResponse{
		Transports:       s.impl.Transports(),
		PluginVersion:    pluginVersion(s.impl),
		ProtocolVersions: versions,
		DataPlane:        s.dataPlane,
	}, nil
}

func (s *grpcServer) Open(ctx context.Context, req *transportv1.OpenRequest) (*transportv1.OpenResponse, error) {
	if !slices.Contains(s.impl.Transports(), req.GetTransport()) {
		return nil, toStatus(fmt.Errorf("transport %q is not served by this plugin: %w", req.GetTransport(), core.ErrUnsupported))
	}
	mode, err := modeFromProto(req.GetMode())
	if err != nil {
		return nil, toStatus(err)
	}
	ep, err := s.impl.Open(ctx, OpenRequest{
		Transport: req.GetTransport(),
		Location:  req.GetLocation(),
		Mode:      mode,
		Options:   req.GetOptions(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	s.mu.Lock()
	s.next++
	h := s.next
	s.endpoints[h] = &openEndpoint{ep: ep, name: req.GetTransport() + ":" + req.GetLocation()}
	s.mu.Unlock()
	return &transportv1.OpenResponse{Handle: h, Capabilities: Capabilities(ep)}, nil
}

// Close forgets the handle first, so no new call can reach the endpoint, then
// closes it. Calls already running keep their reference: closing an endpoint
// with calls in flight is the host's mistake, and the transport sees it.
func (s *grpcServer) Close(ctx context.Context, req *transportv1.CloseRequest) (*transportv1.CloseResponse, error) {
	s.mu.Lock()
	oe, ok := s.endpoints[req.GetHandle()]
	delete(s.endpoints, req.GetHandle())
	s.mu.Unlock()
	if !ok {
		return nil, toStatus(fmt.Errorf("endpoint handle %d is not open: %w", req.GetHandle(), core.ErrInvalid))
	}
	if err := oe.ep.Close(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &transportv1.CloseResponse{}, nil
}

// closeAll closes every open endpoint; Serve calls it when the host is gone so
// that unfinished writes are discarded rather than left half done.
func (s *grpcServer) closeAll(ctx context.Context) {
	s.mu.Lock()
	eps := s.endpoints
	s.endpoints = map[uint64]*openEndpoint{}
	s.mu.Unlock()
	for _, oe := range eps {
		_ = oe.ep.Close(ctx)
	}
}

// endpointAs finds an open endpoint and checks that it implements T, the
// interface behind capability cap.
func endpointAs[T any](s *grpcServer, handle uint64, cap string) (T, error) {
	var zero T
	s.mu.RLock()
	oe, ok := s.endpoints[handle]
	s.mu.RUnlock()
	if !ok {
		return zero, toStatus(fmt.Errorf("endpoint handle %d is not open: %w", handle, core.ErrInvalid))
	}
	v, ok := oe.ep.(T)
	if !ok {
		return zero, toStatus(fmt.Errorf("%s: %s: %w", oe.name, cap, core.ErrUnsupported))
	}
	return v, nil
}

// descRequest is a request naming an endpoint and a descriptor.
type descRequest interface {
	GetHandle() uint64
	GetDescriptorJson() []byte
}

// endpointFor returns the endpoint req names as T (failing when it lacks
// capability cap) and the descriptor req carries.
func endpointFor[T any](s *grpcServer, req descRequest, cap string) (T, ocispec.Descriptor, error) {
	v, err := endpointAs[T](s, req.GetHandle(), cap)
	if err != nil {
		return v, ocispec.Descriptor{}, err
	}
	desc, err := decodeDescriptor(req.GetDescriptorJson())
	if err != nil {
		return v, ocispec.Descriptor{}, toStatus(err)
	}
	return v, desc, nil
}

func (s *grpcServer) Resolve(ctx context.Context, req *transportv1.ResolveRequest) (*transportv1.ResolveResponse, error) {
	src, err := endpointAs[Source](s, req.GetHandle(), CapSource)
	if err != nil {
		return nil, err
	}
	var (
		desc ocispec.Descriptor
		raw  []byte
	)
	switch mr, ok := src.(ManifestResolver); {
	case req.GetWithManifest() && ok:
		desc, raw, err = mr.ResolveManifest(ctx, req.GetRef())
	case req.GetWithManifest():
		// One RPC instead of two, even without the shortcut.
		if desc, err = src.Resolve(ctx, req.GetRef()); err == nil {
			raw, err = src.GetManifest(ctx, desc)
		}
	default:
		desc, err = src.Resolve(ctx, req.GetRef())
	}
	if err != nil {
		return nil, toStatus(err)
	}
	b, err := encodeDescriptor(desc)
	if err != nil {
		return nil, toStatus(err)
	}
	return &transportv1.ResolveResponse{DescriptorJson: b, Raw: raw}, nil
}

func (s *grpcServer) GetManifest(ctx context.Context, req *transportv1.GetManifestRequest) (*transportv1.GetManifestResponse, error) {
	src, desc, err := endpointFor[Source](s, req, CapSource)
	if err != nil {
		return nil, err
	}
	raw, err := src.GetManifest(ctx, desc)
	if err != nil {
		return nil, toStatus(err)
	}
	return &transportv1.GetManifestResponse{Raw: raw}, nil
}

func (s *grpcServer) HasBlob(ctx context.Context, req *transportv1.HasBlobRequest) (*transportv1.HasBlobResponse, error) {
	dst, desc, err := endpointFor[Destination](s, req, CapDest)
	if err != nil {
		return nil, err
	}
	ok, err := dst.HasBlob(ctx, desc)
	if err != nil {
		return nil, toStatus(err)
	}
	return &transportv1.HasBlobResponse{Exists: ok}, nil
}

func (s *grpcServer) PutManifest(ctx context.Context, req *transportv1.PutManifestRequest) (*transportv1.PutManifestResponse, error) {
	dst, desc, err := endpointFor[Destination](s, req, CapDest)
	if err != nil {
		return nil, err
	}
	if err := dst.PutManifest(ctx, desc, req.GetRaw(), req.GetRef()); err != nil {
		return nil, toStatus(err)
	}
	return &transportv1.PutManifestResponse{}, nil
}

func (s *grpcServer) MountBlob(ctx context.Context, req *transportv1.MountBlobRequest) (*transportv1.MountBlobResponse, error) {
	m, desc, err := endpointFor[Mounter](s, req, CapMount)
	if err != nil {
		return nil, err
	}
	ok, err := m.MountBlob(ctx, desc, req.GetFromLocation())
	if err != nil {
		return nil, toStatus(err)
	}
	return &transportv1.MountBlobResponse{Mounted: ok}, nil
}

func (s *grpcServer) ListTags(ctx context.Context, req *transportv1.ListTagsRequest) (*transportv1.ListTagsResponse, error) {
	tl, err := endpointAs[TagLister](s, req.GetHandle(), CapListTags)
	if err != nil {
		return nil, err
	}
	tags, err := tl.ListTags(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &transportv1.ListTagsResponse{Tags: tags}, nil
}

func (s *grpcServer) ListRepositories(ctx context.Context, req *transportv1.ListRepositoriesRequest) (*transportv1.ListRepositoriesResponse, error) {
	rl, err := endpointAs[RepositoryLister](s, req.GetHandle(), CapListRepositories)
	if err != nil {
		return nil, err
	}
	locs, err := rl.ListRepositories(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &transportv1.ListRepositoriesResponse{Locations: locs}, nil
}

func (s *grpcServer) Referrers(ctx context.Context, req *transportv1.ReferrersRequest) (*transportv1.ReferrersResponse, error) {
	rl, err := endpointAs[ReferrerLister](s, req.GetHandle(), CapReferrers)
	if err != nil {
		return nil, err
	}
	subject, err := digest.Parse(req.GetSubject())
	if err != nil {
		return nil, toStatus(fmt.Errorf("referrers subject %q: %v: %w", req.GetSubject(), err, core.ErrInvalid))
	}
	descs, err := rl.Referrers(ctx, subject, req.GetArtifactType())
	if err != nil {
		return nil, toStatus(err)
	}
	bs, err := encodeDescriptors(descs)
	if err != nil {
		return nil, toStatus(err)
	}
	return &transportv1.ReferrersResponse{DescriptorsJson: bs}, nil
}

func (s *grpcServer) Delete(ctx context.Context, req *transportv1.DeleteRequest) (*transportv1.DeleteResponse, error) {
	d, err := endpointAs[Deleter](s, req.GetHandle(), CapDelete)
	if err != nil {
		return nil, err
	}
	if err := d.Delete(ctx, req.GetRef()); err != nil {
		return nil, toStatus(err)
	}
	return &transportv1.DeleteResponse{}, nil
}

func (s *grpcServer) Commit(ctx context.Context, req *transportv1.CommitRequest) (*transportv1.CommitResponse, error) {
	c, err := endpointAs[Committer](s, req.GetHandle(), CapCommit)
	if err != nil {
		return nil, err
	}
	if err := c.Commit(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &transportv1.CommitResponse{}, nil
}

func (s *grpcServer) BlobPath(ctx context.Context, req *transportv1.BlobPathRequest) (*transportv1.BlobPathResponse, error) {
	bp, desc, err := endpointFor[BlobPather](s, req, CapBlobPath)
	if err != nil {
		return nil, err
	}
	p, err := bp.BlobPath(ctx, desc)
	if err != nil {
		return nil, toStatus(err)
	}
	return &transportv1.BlobPathResponse{Path: p}, nil
}

func (s *grpcServer) PutBlobFile(ctx context.Context, req *transportv1.PutBlobFileRequest) (*transportv1.PutBlobFileResponse, error) {
	fp, desc, err := endpointFor[FilePutter](s, req, CapPutBlobFile)
	if err != nil {
		return nil, err
	}
	if err := fp.PutBlobFile(ctx, desc, req.GetPath()); err != nil {
		return nil, toStatus(err)
	}
	return &transportv1.PutBlobFileResponse{}, nil
}

// progressInterval is how often a file transfer's count is forwarded (when
// it changed).
const progressInterval = 200 * time.Millisecond

// PutBlobFileProgress runs the plugin's PutBlobFileProgress, forwarding the
// count it reports (see forwardProgress).
func (s *grpcServer) PutBlobFileProgress(req *transportv1.PutBlobFileRequest, stream transportv1.Transport_PutBlobFileProgressServer) error {
	fp, desc, err := endpointFor[FileProgressPutter](s, req, CapPutBlobFileProgress)
	if err != nil {
		return err
	}
	return forwardProgress(stream, func(progress func(int64)) error {
		return fp.PutBlobFileProgress(stream.Context(), desc, req.GetPath(), progress)
	})
}

// GetBlobToFile runs the plugin's GetBlobToFile, forwarding the count it
// reports (see forwardProgress).
func (s *grpcServer) GetBlobToFile(req *transportv1.GetBlobToFileRequest, stream transportv1.Transport_GetBlobToFileServer) error {
	g, desc, err := endpointFor[BlobFileGetter](s, req, CapGetBlobFile)
	if err != nil {
		return err
	}
	return forwardProgress(stream, func(progress func(int64)) error {
		return g.GetBlobToFile(stream.Context(), desc, req.GetPath(), progress)
	})
}

// CopyBlob runs the plugin's CopyBlobFrom with the endpoint from_handle
// names, forwarding the count it reports (see forwardProgress).
func (s *grpcServer) CopyBlob(req *transportv1.CopyBlobRequest, stream transportv1.Transport_CopyBlobServer) error {
	c, desc, err := endpointFor[BlobCopier](s, req, CapCopyBlob)
	if err != nil {
		return err
	}
	from, err := endpointAs[Endpoint](s, req.GetFromHandle(), "copy-blob source")
	if err != nil {
		return err
	}
	return forwardProgress(stream, func(progress func(int64)) error {
		return c.CopyBlobFrom(stream.Context(), desc, from, progress)
	})
}

// forwardProgress runs a file transfer while one goroutine forwards the count
// it reports, the latest value each progressInterval and once more at the
// end: the plugin may report as often as it likes without the stream
// carrying every call.
func forwardProgress(stream interface {
	Send(*transportv1.BlobFileProgress) error
}, run func(progress func(int64)) error) error {
	var latest atomic.Int64
	latest.Store(-1)
	done := make(chan struct{})
	sent := make(chan int64, 1) // the last count the goroutine sent
	go func() {
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		last := int64(-1)
		defer func() { sent <- last }()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			if n := latest.Load(); n >= 0 && n != last {
				if stream.Send(&transportv1.BlobFileProgress{Bytes: n}) != nil {
					return // the host went away: the call's context ends the transfer
				}
				last = n
			}
		}
	}()
	err := run(func(n int64) { latest.Store(n) })
	close(done)
	last := <-sent
	if err != nil {
		return toStatus(err)
	}
	if n := latest.Load(); n >= 0 && n != last {
		return stream.Send(&transportv1.BlobFileProgress{Bytes: n})
	}
	return nil
}

func (s *grpcServer) StageBlob(ctx context.Context, req *transportv1.StageBlobRequest) (*transportv1.StageBlobResponse, error) {
	st, desc, err := endpointFor[BlobStager](s, req, CapStageBlob)
	if err != nil {
		return nil, err
	}
	p, err := st.StageBlob(ctx, desc)
	if err != nil {
		return nil, toStatus(err)
	}
	return &transportv1.StageBlobResponse{Path: p}, nil
}

func (s *grpcServer) CommitStagedBlob(ctx context.Context, req *transportv1.CommitStagedBlobRequest) (*transportv1.CommitStagedBlobResponse, error) {
	st, desc, err := endpointFor[BlobStager](s, req, CapStageBlob)
	if err != nil {
		return nil, err
	}
	if req.GetHostVerified() {
		ctx = WithHostVerified(ctx)
	}
	if err := st.CommitStagedBlob(ctx, desc, req.GetPath()); err != nil {
		return nil, toStatus(err)
	}
	return &transportv1.CommitStagedBlobResponse{}, nil
}

func (s *grpcServer) AbortStagedBlob(ctx context.Context, req *transportv1.AbortStagedBlobRequest) (*transportv1.AbortStagedBlobResponse, error) {
	st, err := endpointAs[BlobStager](s, req.GetHandle(), CapStageBlob)
	if err != nil {
		return nil, err
	}
	if err := st.AbortStagedBlob(ctx, req.GetPath()); err != nil {
		return nil, toStatus(err)
	}
	return &transportv1.AbortStagedBlobResponse{}, nil
}

// parseManifestDigest parses the manifest digest of a signature call.
func parseManifestDigest(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("manifest digest %q: %v: %w", s, err, core.ErrInvalid)
	}
	return d, nil
}

// Signatures sends the signatures one per message, after checking the whole
// set against the limits.
func (s *grpcServer) Signatures(req *transportv1.SignaturesRequest, stream transportv1.Transport_SignaturesServer) error {
	sl, err := endpointAs[SignatureLister](s, req.GetHandle(), CapSignatures)
	if err != nil {
		return err
	}
	d, err := parseManifestDigest(req.GetManifestDigest())
	if err != nil {
		return toStatus(err)
	}
	sigs, err := sl.Signatures(stream.Context(), d)
	if err != nil {
		return toStatus(err)
	}
	if err := CheckSignatures(sigs); err != nil {
		return toStatus(fmt.Errorf("signatures of %s: %w", d, err))
	}
	for _, sig := range sigs {
		if err := stream.Send(&transportv1.Signature{Data: sig}); err != nil {
			return err
		}
	}
	return nil
}

// PutSignatures receives the header, then one signature per message,
// refusing a set over the limits as soon as it shows.
func (s *grpcServer) PutSignatures(stream transportv1.Transport_PutSignaturesServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	sw, err := endpointAs[SignatureWriter](s, first.GetHandle(), CapPutSignatures)
	if err != nil {
		return err
	}
	d, err := parseManifestDigest(first.GetManifestDigest())
	if err != nil {
		return toStatus(err)
	}
	var sigs [][]byte
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if len(sigs) == MaxSignatures {
			return toStatus(fmt.Errorf("signatures of %s: more than %d: %w", d, MaxSignatures, core.ErrTooLarge))
		}
		if err := checkSignature(len(sigs), msg.GetSignature()); err != nil {
			return toStatus(fmt.Errorf("signatures of %s: %w", d, err))
		}
		sigs = append(sigs, msg.GetSignature())
	}
	if err := sw.PutSignatures(stream.Context(), d, sigs); err != nil {
		return toStatus(err)
	}
	return stream.SendAndClose(&transportv1.PutSignaturesResponse{})
}
