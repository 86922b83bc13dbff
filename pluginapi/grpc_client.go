package pluginapi

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	transportv1 "github.com/stevedore-oci/stevedore/pluginapi/proto/v1"
)

// RemotePlugin is the host end of a plugin process: a Plugin whose calls go
// over gRPC. Make it with Dispense; it is safe for concurrent use. Close it
// when done (it may own a data-plane socket); that does not stop the process.
type RemotePlugin struct {
	client  transportv1.TransportClient
	info    PluginInfo
	streams bool // blob bytes over gRPC streams instead of the data plane

	mu        sync.Mutex
	plane     *DataPlane
	ownsPlane bool
	closed    bool
}

var _ Plugin = (*RemotePlugin)(nil)

func (r *RemotePlugin) fetchInfo(ctx context.Context) (PluginInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := r.client.Info(ctx, &transportv1.InfoRequest{})
	if err != nil {
		return PluginInfo{}, fromStatus(err)
	}
	info := PluginInfo{
		Transports: resp.GetTransports(),
		Version:    resp.GetPluginVersion(),
		DataPlane:  resp.GetDataPlane(),
	}
	for _, v := range resp.GetProtocolVersions() {
		info.ProtocolVersions = append(info.ProtocolVersions, int(v))
	}
	r.info = info
	return info, nil
}

// Info is what the plugin said about itself when it was dispensed.
func (r *RemotePlugin) Info() PluginInfo { return r.info }

// UsesDataPlane reports whether blob bytes go over the unix-socket data plane
// (false: gRPC streams, because of STEVEDORE_DATAPLANE=grpc, WithGRPCStreams,
// or a plugin without data-plane support).
func (r *RemotePlugin) UsesDataPlane() bool { return !r.streams }

// Transports implements Plugin.
func (r *RemotePlugin) Transports() []string { return slices.Clone(r.info.Transports) }

// Open implements Plugin. The Endpoint is always a *RemoteEndpoint; see its
// documentation for how capabilities are reported.
func (r *RemotePlugin) Open(ctx context.Context, req OpenRequest) (Endpoint, error) {
	return r.OpenRemote(ctx, req)
}

// OpenRemote is Open with the concrete result type.
func (r *RemotePlugin) OpenRemote(ctx context.Context, req OpenRequest) (*RemoteEndpoint, error) {
	resp, err := r.client.Open(ctx, &transportv1.OpenRequest{
		Transport: req.Transport,
		Location:  req.Location,
		Mode:      modeToProto(req.Mode),
		Options:   req.Options,
	})
	if err != nil {
		return nil, fromStatus(err)
	}
	return &RemoteEndpoint{
		p:      r,
		handle: resp.GetHandle(),
		name:   req.Transport + ":" + req.Location,
		caps:   resp.GetCapabilities(),
	}, nil
}

// dataPlane returns the data plane, creating an owned one on first use.
func (r *RemotePlugin) dataPlane() (*DataPlane, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, fmt.Errorf("plugin client is closed: %w", core.ErrUnavailable)
	}
	if r.plane == nil {
		dp, err := NewDataPlane()
		if err != nil {
			return nil, err
		}
		r.plane = dp
		r.ownsPlane = true
	}
	return r.plane, nil
}

// Close releases the data plane this RemotePlugin owns. Endpoints still open
// stay open in the plugin; close them first.
func (r *RemotePlugin) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.ownsPlane && r.plane != nil {
		return r.plane.Close()
	}
	return nil
}

// RemoteEndpoint is an endpoint opened in a plugin process. It has every
// method of Source, Destination and the optional interfaces, so a type
// assertion on it always succeeds: ask Has (or Capabilities) what the plugin
// advertised instead. A method whose capability was not advertised returns
// an error wrapping core.ErrUnsupported without calling the plugin.
// It is safe for concurrent use.
type RemoteEndpoint struct {
	p      *RemotePlugin
	handle uint64
	name   string // "transport:location"
	caps   []string
}

var (
	_ Source             = (*RemoteEndpoint)(nil)
	_ Destination        = (*RemoteEndpoint)(nil)
	_ TagLister          = (*RemoteEndpoint)(nil)
	_ ReferrerLister     = (*RemoteEndpoint)(nil)
	_ Deleter            = (*RemoteEndpoint)(nil)
	_ Mounter            = (*RemoteEndpoint)(nil)
	_ Committer          = (*RemoteEndpoint)(nil)
	_ BlobPather         = (*RemoteEndpoint)(nil)
	_ FilePutter         = (*RemoteEndpoint)(nil)
	_ FileProgressPutter = (*RemoteEndpoint)(nil)
	_ BlobFileGetter     = (*RemoteEndpoint)(nil)
	_ BlobCopier         = (*RemoteEndpoint)(nil)
	_ BlobStager         = (*RemoteEndpoint)(nil)
	_ SignatureLister    = (*RemoteEndpoint)(nil)
	_ SignatureWriter    = (*RemoteEndpoint)(nil)
)

// Capabilities lists the capability names (Cap*) the plugin advertised.
func (e *RemoteEndpoint) Capabilities() []string { return slices.Clone(e.caps) }

// Has reports whether the plugin advertised capability c.
func (e *RemoteEndpoint) Has(c string) bool { return slices.Contains(e.caps, c) }

// String names the endpoint as "transport:location".
func (e *RemoteEndpoint) String() string { return e.name }

func (e *RemoteEndpoint) need(c string) error {
	if e.Has(c) {
		return nil
	}
	return fmt.Errorf("%s: %s: %w", e.name, c, core.ErrUnsupported)
}

// Close implements Endpoint.
func (e *RemoteEndpoint) Close(ctx context.Context) error {
	_, err := e.p.client.Close(ctx, &transportv1.CloseRequest{Handle: e.handle})
	return fromStatus(err)
}

// Resolve implements Source.
func (e *RemoteEndpoint) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	if err := e.need(CapSource); err != nil {
		return ocispec.Descriptor{}, err
	}
	resp, err := e.p.client.Resolve(ctx, &transportv1.ResolveRequest{Handle: e.handle, Ref: ref})
	if err != nil {
		return ocispec.Descriptor{}, fromStatus(err)
	}
	return decodeDescriptor(resp.GetDescriptorJson())
}

// ResolveManifest implements ManifestResolver: one RPC asking for the
// descriptor and the manifest; a plugin built before that answers with the
// descriptor alone and is asked for the manifest with GetManifest. As with
// GetManifest, the caller checks the bytes against the descriptor.
func (e *RemoteEndpoint) ResolveManifest(ctx context.Context, ref string) (ocispec.Descriptor, []byte, error) {
	if err := e.need(CapSource); err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	resp, err := e.p.client.Resolve(ctx, &transportv1.ResolveRequest{Handle: e.handle, Ref: ref, WithManifest: true})
	if err != nil {
		return ocispec.Descriptor{}, nil, fromStatus(err)
	}
	desc, err := decodeDescriptor(resp.GetDescriptorJson())
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	raw := resp.GetRaw()
	if len(raw) == 0 {
		if raw, err = e.GetManifest(ctx, desc); err != nil {
			return ocispec.Descriptor{}, nil, err
		}
	}
	return desc, raw, nil
}

// GetManifest implements Source.
func (e *RemoteEndpoint) GetManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if err := e.need(CapSource); err != nil {
		return nil, err
	}
	b, err := encodeDescriptor(desc)
	if err != nil {
		return nil, err
	}
	resp, err := e.p.client.GetManifest(ctx, &transportv1.GetManifestRequest{Handle: e.handle, DescriptorJson: b})
	if err != nil {
		return nil, fromStatus(err)
	}
	return resp.GetRaw(), nil
}

// HasBlob implements Destination.
func (e *RemoteEndpoint) HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	if err := e.need(CapDest); err != nil {
		return false, err
	}
	b, err := encodeDescriptor(desc)
	if err != nil {
		return false, err
	}
	resp, err := e.p.client.HasBlob(ctx, &transportv1.HasBlobRequest{Handle: e.handle, DescriptorJson: b})
	if err != nil {
		return false, fromStatus(err)
	}
	return resp.GetExists(), nil
}

// PutManifest implements Destination.
func (e *RemoteEndpoint) PutManifest(ctx context.Context, desc ocispec.Descriptor, raw []byte, ref string) error {
	if err := e.need(CapDest); err != nil {
		return err
	}
	b, err := encodeDescriptor(desc)
	if err != nil {
		return err
	}
	_, err = e.p.client.PutManifest(ctx, &transportv1.PutManifestRequest{Handle: e.handle, DescriptorJson: b, Raw: raw, Ref: ref})
	return fromStatus(err)
}

// MountBlob implements Mounter.
func (e *RemoteEndpoint) MountBlob(ctx context.Context, desc ocispec.Descriptor, fromLocation string) (bool, error) {
	if err := e.need(CapMount); err != nil {
		return false, err
	}
	b, err := encodeDescriptor(desc)
	if err != nil {
		return false, err
	}
	resp, err := e.p.client.MountBlob(ctx, &transportv1.MountBlobRequest{Handle: e.handle, DescriptorJson: b, FromLocation: fromLocation})
	if err != nil {
		return false, fromStatus(err)
	}
	return resp.GetMounted(), nil
}

// ListTags implements TagLister.
func (e *RemoteEndpoint) ListTags(ctx context.Context) ([]string, error) {
	if err := e.need(CapListTags); err != nil {
		return nil, err
	}
	resp, err := e.p.client.ListTags(ctx, &transportv1.ListTagsRequest{Handle: e.handle})
	if err != nil {
		return nil, fromStatus(err)
	}
	return resp.GetTags(), nil
}

// ListRepositories implements RepositoryLister.
func (e *RemoteEndpoint) ListRepositories(ctx context.Context) ([]string, error) {
	if err := e.need(CapListRepositories); err != nil {
		return nil, err
	}
	resp, err := e.p.client.ListRepositories(ctx, &transportv1.ListRepositoriesRequest{Handle: e.handle})
	if err != nil {
		return nil, fromStatus(err)
	}
	return resp.GetLocations(), nil
}

// Referrers implements ReferrerLister.
func (e *RemoteEndpoint) Referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	if err := e.need(CapReferrers); err != nil {
		return nil, err
	}
	resp, err := e.p.client.Referrers(ctx, &transportv1.ReferrersRequest{
		Handle: e.handle, Subject: subject.String(), ArtifactType: artifactType,
	})
	if err != nil {
		return nil, fromStatus(err)
	}
	return decodeDescriptors(resp.GetDescriptorsJson())
}

// Delete implements Deleter.
func (e *RemoteEndpoint) Delete(ctx context.Context, ref string) error {
	if err := e.need(CapDelete); err != nil {
		return err
	}
	_, err := e.p.client.Delete(ctx, &transportv1.DeleteRequest{Handle: e.handle, Ref: ref})
	return fromStatus(err)
}

// Commit implements Committer.
func (e *RemoteEndpoint) Commit(ctx context.Context) error {
	if err := e.need(CapCommit); err != nil {
		return err
	}
	_, err := e.p.client.Commit(ctx, &transportv1.CommitRequest{Handle: e.handle})
	return fromStatus(err)
}

// BlobPath implements BlobPather.
func (e *RemoteEndpoint) BlobPath(ctx context.Context, desc ocispec.Descriptor) (string, error) {
	if err := e.need(CapBlobPath); err != nil {
		return "", err
	}
	b, err := encodeDescriptor(desc)
	if err != nil {
		return "", err
	}
	resp, err := e.p.client.BlobPath(ctx, &transportv1.BlobPathRequest{Handle: e.handle, DescriptorJson: b})
	if err != nil {
		return "", fromStatus(err)
	}
	return resp.GetPath(), nil
}

// PutBlobFile implements FilePutter.
func (e *RemoteEndpoint) PutBlobFile(ctx context.Context, desc ocispec.Descriptor, path string) error {
	if err := e.need(CapPutBlobFile); err != nil {
		return err
	}
	b, err := encodeDescriptor(desc)
	if err != nil {
		return err
	}
	_, err = e.p.client.PutBlobFile(ctx, &transportv1.PutBlobFileRequest{Handle: e.handle, DescriptorJson: b, Path: path})
	return fromStatus(err)
}

// PutBlobFileProgress implements FileProgressPutter.
func (e *RemoteEndpoint) PutBlobFileProgress(ctx context.Context, desc ocispec.Descriptor, path string, progress func(sent int64)) error {
	return e.progressCall(ctx, CapPutBlobFileProgress, desc, progress, func(ctx context.Context, b []byte) (progressStream, error) {
		return e.p.client.PutBlobFileProgress(ctx, &transportv1.PutBlobFileRequest{Handle: e.handle, DescriptorJson: b, Path: path})
	})
}

// GetBlobToFile implements BlobFileGetter.
func (e *RemoteEndpoint) GetBlobToFile(ctx context.Context, desc ocispec.Descriptor, path string, progress func(written int64)) error {
	return e.progressCall(ctx, CapGetBlobFile, desc, progress, func(ctx context.Context, b []byte) (progressStream, error) {
		return e.p.client.GetBlobToFile(ctx, &transportv1.GetBlobToFileRequest{Handle: e.handle, DescriptorJson: b, Path: path})
	})
}

// CopyBlobFrom implements BlobCopier: from must be an endpoint of the same
// plugin process (a *RemoteEndpoint, or a wrapper whose Unwrap leads to
// one); any other is refused with core.ErrUnsupported.
func (e *RemoteEndpoint) CopyBlobFrom(ctx context.Context, desc ocispec.Descriptor, from Endpoint, progress func(moved int64)) error {
	for {
		u, ok := from.(interface{ Unwrap() Endpoint })
		if !ok {
			break
		}
		from = u.Unwrap()
	}
	src, ok := from.(*RemoteEndpoint)
	if !ok || src.p != e.p {
		if err := e.need(CapCopyBlob); err != nil {
			return err
		}
		return fmt.Errorf("%s: copy blob %s: the source is not an endpoint of this plugin: %w", e.name, desc.Digest, core.ErrUnsupported)
	}
	return e.progressCall(ctx, CapCopyBlob, desc, progress, func(ctx context.Context, b []byte) (progressStream, error) {
		return e.p.client.CopyBlob(ctx, &transportv1.CopyBlobRequest{Handle: e.handle, DescriptorJson: b, FromHandle: src.handle})
	})
}

// progressStream is the answer of a call that streams a transfer's counts.
type progressStream interface {
	Recv() (*transportv1.BlobFileProgress, error)
}

// progressCall makes a call that needs capability cap and streams the
// counts of a transfer of desc (open starts it, given the encoded
// descriptor), handing each to progress until the call's result.
func (e *RemoteEndpoint) progressCall(ctx context.Context, cap string, desc ocispec.Descriptor, progress func(int64), open func(context.Context, []byte) (progressStream, error)) error {
	if err := e.need(cap); err != nil {
		return err
	}
	b, err := encodeDescriptor(desc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := open(ctx, b)
	if err != nil {
		return fromStatus(err)
	}
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fromStatus(err)
		}
		if progress != nil {
			progress(ev.GetBytes())
		}
	}
}

// StageBlob implements BlobStager.
func (e *RemoteEndpoint) StageBlob(ctx context.Context, desc ocispec.Descriptor) (string, error) {
	if err := e.need(CapStageBlob); err != nil {
		return "", err
	}
	b, err := encodeDescriptor(desc)
	if err != nil {
		return "", err
	}
	resp, err := e.p.client.StageBlob(ctx, &transportv1.StageBlobRequest{Handle: e.handle, DescriptorJson: b})
	if err != nil {
		return "", fromStatus(err)
	}
	return resp.GetPath(), nil
}

// CommitStagedBlob implements BlobStager; HostVerified(ctx) travels with
// the call.
func (e *RemoteEndpoint) CommitStagedBlob(ctx context.Context, desc ocispec.Descriptor, path string) error {
	if err := e.need(CapStageBlob); err != nil {
		return err
	}
	b, err := encodeDescriptor(desc)
	if err != nil {
		return err
	}
	_, err = e.p.client.CommitStagedBlob(ctx, &transportv1.CommitStagedBlobRequest{
		Handle: e.handle, DescriptorJson: b, Path: path, HostVerified: HostVerified(ctx),
	})
	return fromStatus(err)
}

// AbortStagedBlob implements BlobStager.
func (e *RemoteEndpoint) AbortStagedBlob(ctx context.Context, path string) error {
	if err := e.need(CapStageBlob); err != nil {
		return err
	}
	_, err := e.p.client.AbortStagedBlob(ctx, &transportv1.AbortStagedBlobRequest{Handle: e.handle, Path: path})
	return fromStatus(err)
}

// Signatures implements SignatureLister. The set is checked against the
// limits as it arrives.
func (e *RemoteEndpoint) Signatures(ctx context.Context, manifest digest.Digest) ([][]byte, error) {
	if err := e.need(CapSignatures); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := e.p.client.Signatures(ctx, &transportv1.SignaturesRequest{Handle: e.handle, ManifestDigest: manifest.String()})
	if err != nil {
		return nil, fromStatus(err)
	}
	sigs := [][]byte{}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return sigs, nil
		}
		if err != nil {
			return nil, fromStatus(err)
		}
		if len(sigs) == MaxSignatures {
			return nil, fmt.Errorf("%s: signatures of %s: more than %d: %w", e.name, manifest, MaxSignatures, core.ErrTooLarge)
		}
		if err := checkSignature(len(sigs), msg.GetData()); err != nil {
			return nil, fmt.Errorf("%s: signatures of %s: %w", e.name, manifest, err)
		}
		sigs = append(sigs, msg.GetData())
	}
}

// PutSignatures implements SignatureWriter. A set over the limits is
// refused here, without calling the plugin.
func (e *RemoteEndpoint) PutSignatures(ctx context.Context, manifest digest.Digest, sigs [][]byte) error {
	if err := e.need(CapPutSignatures); err != nil {
		return err
	}
	if err := CheckSignatures(sigs); err != nil {
		return fmt.Errorf("%s: signatures of %s: %w", e.name, manifest, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := e.p.client.PutSignatures(ctx)
	if err != nil {
		return fromStatus(err)
	}
	msgs := make([]*transportv1.PutSignaturesRequest, 0, len(sigs)+1)
	msgs = append(msgs, &transportv1.PutSignaturesRequest{Handle: e.handle, ManifestDigest: manifest.String()})
	for _, s := range sigs {
		msgs = append(msgs, &transportv1.PutSignaturesRequest{Signature: s})
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			// The server ended the call; its status says why.
			if err == io.EOF {
				break
			}
			return fromStatus(err)
		}
	}
	_, err = stream.CloseAndRecv()
	return fromStatus(err)
}
