package transporttest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/pluginapi"
)

// Harness describes the transport under test and what its format can hold.
// Flags describe the format's limits; the optional interfaces an endpoint
// advertises are discovered and each one is exercised.
type Harness struct {
	// Plugin serves Transport, in-process or through the gRPC client adapter.
	Plugin pluginapi.Plugin
	// Transport is the name passed in OpenRequest.Transport.
	Transport string
	// NewLocation returns a fresh location for a new endpoint (a path that
	// does not exist yet inside t.TempDir(), a new registry repository...).
	NewLocation func(t *testing.T) string
	// Options are passed in every OpenRequest.
	Options map[string]string

	// ReadOnly: the transport cannot write. Seed must then store content.
	ReadOnly bool
	// Seed stores a at location under ref ("" = by digest only) by other
	// means than the transport. Required with ReadOnly; ignored otherwise.
	Seed func(t *testing.T, location, ref string, a Artifact)
	// NoTags: the format has no names; images are written with their own
	// digest as ref and read back with "".
	NoTags bool
	// SingleImage: a location holds one image (possibly under several tags).
	SingleImage bool
	// NoIndex: the format cannot hold image indexes.
	NoIndex bool
	// NoDigestRefs: Resolve does not accept digests.
	NoDigestRefs bool
	// WriteThenRead: what is written cannot be read back before the write
	// endpoint is committed and closed (archives). Without it, reads through
	// a write endpoint that advertises "source" are also checked.
	WriteThenRead bool
	// LayerSize is the payload size of generated layers (default 300 KiB).
	LayerSize int64

	// ConvertsManifests: the format stores images in another form than
	// written (docker-archive keeps layers uncompressed), so what it serves
	// back has other layer descriptors and another manifest digest. Instead
	// of comparing bytes with what was written, the kit then checks what a
	// conversion must keep: Resolve gives a valid manifest (index) whose
	// served bytes match the descriptor; an index lists one converted image
	// per written one, in order, with the same platforms; an image has the
	// written config (same digest and bytes) and as many layers as written,
	// each served layer matching its descriptor (also read from offsets) and
	// decompressing to the written layer's uncompressed content (diff ID).
	// The written digests must then resolve to ErrNotFound (unless the
	// conversion left them unchanged), the served ones to the same
	// descriptor. An image written untagged is read back with "": it is the
	// location's only image.
	ConvertsManifests bool
	// TagRef turns a kit tag ("v1", "a", ...) into the ref the transport
	// names images with, e.g. docker-archive "a" -> "kit/a:v1"; ListTags
	// must list them in that form. Default: the tag as is.
	TagRef func(tag string) string
}

// Run runs the conformance subtests against h.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Plugin == nil || h.Transport == "" || h.NewLocation == nil {
		t.Fatal("transporttest: Harness needs Plugin, Transport and NewLocation")
	}
	if h.ReadOnly && h.Seed == nil {
		t.Fatal("transporttest: a ReadOnly harness needs Seed")
	}
	if h.LayerSize == 0 {
		h.LayerSize = 300 << 10
	}
	k := &kit{h: h}
	tests := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"Capabilities", k.testCapabilities},
		{"SingleImage", k.testSingleImage},
		{"Index", k.testIndex},
		{"UntaggedTopLevel", k.testUntagged},
		{"ListTags", k.testListTags},
		{"ListRepositories", k.testListRepositories},
		{"Delete", k.testDelete},
		{"DigestMismatch", k.testDigestMismatch},
		{"NotFound", k.testNotFound},
		{"ConcurrentPutBlob", k.testConcurrentPutBlob},
		{"PutBlobExisting", k.testPutBlobExisting},
		{"BlobPath", k.testBlobPath},
		{"GetBlobToFile", k.testGetBlobToFile},
		{"CopyBlob", k.testCopyBlob},
		{"PutBlobFile", k.testPutBlobFile},
		{"StageBlob", k.testStageBlob},
		{"Mount", k.testMount},
		{"Referrers", k.testReferrers},
		{"Signatures", k.testSignatures},
		{"CloseWithoutCommit", k.testCloseWithoutCommit},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.fn)
	}
}

type kit struct {
	h Harness
}

// capsOf returns what ep advertises: its own Capabilities method when it has
// one (the gRPC adapter implements every interface), else the interfaces
// it implements.
func capsOf(ep pluginapi.Endpoint) []string {
	if c, ok := ep.(interface{ Capabilities() []string }); ok {
		return c.Capabilities()
	}
	return pluginapi.Capabilities(ep)
}

func has(ep pluginapi.Endpoint, c string) bool { return slices.Contains(capsOf(ep), c) }

// as returns ep as T, failing the test when ep advertises capability c but
// does not implement T.
func as[T any](t *testing.T, ep pluginapi.Endpoint, c string) T {
	t.Helper()
	v, ok := ep.(T)
	if !ok {
		t.Fatalf("endpoint %T advertises %q but does not implement its interface", ep, c)
	}
	return v
}

func (k *kit) openErr(t *testing.T, loc string, mode pluginapi.Mode) (pluginapi.Endpoint, error) {
	t.Helper()
	ep, err := k.h.Plugin.Open(context.Background(), pluginapi.OpenRequest{Transport: k.h.Transport, Location: loc, Mode: mode, Options: k.h.Options})
	if err == nil {
		t.Cleanup(func() { _ = ep.Close(context.Background()) }) // a second Close may fail; harmless
	}
	return ep, err
}

func (k *kit) open(t *testing.T, loc string, mode pluginapi.Mode) pluginapi.Endpoint {
	t.Helper()
	ep, err := k.openErr(t, loc, mode)
	if err != nil {
		t.Fatalf("Open %s:%s (%s): %v", k.h.Transport, loc, mode, err)
	}
	return ep
}

func (k *kit) source(t *testing.T, loc string) (pluginapi.Endpoint, pluginapi.Source) {
	t.Helper()
	ep := k.open(t, loc, pluginapi.ModeRead)
	if !has(ep, pluginapi.CapSource) {
		t.Fatalf("endpoint opened with ModeRead does not advertise %q (has %v)", pluginapi.CapSource, capsOf(ep))
	}
	return ep, as[pluginapi.Source](t, ep, pluginapi.CapSource)
}

func (k *kit) dest(t *testing.T, loc string) (pluginapi.Endpoint, pluginapi.Destination) {
	t.Helper()
	ep := k.open(t, loc, pluginapi.ModeWrite)
	if !has(ep, pluginapi.CapDest) {
		t.Fatalf("endpoint opened with ModeWrite does not advertise %q (has %v)", pluginapi.CapDest, capsOf(ep))
	}
	return ep, as[pluginapi.Destination](t, ep, pluginapi.CapDest)
}

// finish commits (when the endpoint is a Committer) and closes.
func finish(t *testing.T, ep pluginapi.Endpoint) {
	t.Helper()
	ctx := context.Background()
	if has(ep, pluginapi.CapCommit) {
		if err := as[pluginapi.Committer](t, ep, pluginapi.CapCommit).Commit(ctx); err != nil {
			t.Fatalf("Commit: %v", err)
		}
	}
	if err := ep.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// tag is the transport's ref for a kit tag (see Harness.TagRef).
func (k *kit) tag(tag string) string {
	if k.h.TagRef == nil {
		return tag
	}
	return k.h.TagRef(tag)
}

// writeRef is the ref an artifact is written under: the tag, or for formats
// without names (and for "") the artifact's own digest.
func (k *kit) writeRef(a Artifact, tag string) string {
	if tag == "" || k.h.NoTags {
		return a.Top().Descriptor.Digest.String()
	}
	return k.tag(tag)
}

// readRef is how a written artifact is read back.
func (k *kit) readRef(a Artifact, tag string) string {
	switch {
	case k.h.NoTags:
		return ""
	case tag == "":
		return a.Top().Descriptor.Digest.String()
	}
	return k.tag(tag)
}

// putArtifact writes a's blobs, child manifests and top-level manifest
// under each tag through d.
func putArtifact(t *testing.T, d pluginapi.Destination, a Artifact, refs ...string) {
	t.Helper()
	ctx := context.Background()
	for _, b := range a.Blobs() {
		if err := d.PutBlob(ctx, b.Descriptor, bytes.NewReader(b.Data)); err != nil {
			t.Fatalf("PutBlob %s: %v", b.Descriptor.Digest, err)
		}
	}
	for _, m := range a.ChildManifests() {
		if err := d.PutManifest(ctx, m.Descriptor, m.Data, ""); err != nil {
			t.Fatalf("PutManifest %s (child): %v", m.Descriptor.Digest, err)
		}
	}
	for _, ref := range refs {
		if err := d.PutManifest(ctx, a.Top().Descriptor, a.Top().Data, ref); err != nil {
			t.Fatalf("PutManifest %s as %q: %v", a.Top().Descriptor.Digest, ref, err)
		}
	}
}

// store puts a at loc under the given tags (written with writeRef), through
// the transport or, for read-only transports, through Seed.
func (k *kit) store(t *testing.T, loc string, a Artifact, tags ...string) {
	t.Helper()
	if len(tags) == 0 {
		tags = []string{""}
	}
	if k.h.ReadOnly {
		for _, tag := range tags {
			ref := k.tag(tag)
			if k.h.NoTags || tag == "" {
				ref = ""
			}
			k.h.Seed(t, loc, ref, a)
		}
		return
	}
	ep, d := k.dest(t, loc)
	var refs []string
	for _, tag := range tags {
		refs = append(refs, k.writeRef(a, tag))
	}
	putArtifact(t, d, a, refs...)
	finish(t, ep)
}

// checkArtifact reads a back through src under ref and compares every byte,
// including reads of a blob from offsets past 0.
func checkArtifact(t *testing.T, src pluginapi.Source, a Artifact, ref string) {
	t.Helper()
	ctx := context.Background()
	top := a.Top().Descriptor
	got, err := src.Resolve(ctx, ref)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", ref, err)
	}
	if got.Digest != top.Digest || got.Size != top.Size || got.MediaType != top.MediaType {
		t.Fatalf("Resolve(%q) = {%s %s %d}, want {%s %s %d}", ref, got.MediaType, got.Digest, got.Size, top.MediaType, top.Digest, top.Size)
	}
	// A source that resolves and reads in one step (and every plugin
	// through the SDK, which answers with Resolve and GetManifest) gives
	// the same descriptor and the manifest's bytes.
	if mr, ok := src.(pluginapi.ManifestResolver); ok {
		got, raw, err := mr.ResolveManifest(ctx, ref)
		if err != nil {
			t.Fatalf("ResolveManifest(%q): %v", ref, err)
		}
		if got.Digest != top.Digest || got.Size != top.Size || got.MediaType != top.MediaType || string(raw) != string(a.Top().Data) {
			t.Fatalf("ResolveManifest(%q) = {%s %s %d} and %d bytes, want {%s %s %d} and the manifest's %d", ref, got.MediaType, got.Digest, got.Size, len(raw), top.MediaType, top.Digest, top.Size, len(a.Top().Data))
		}
	}
	for _, m := range append([]Blob{a.Top()}, a.ChildManifests()...) {
		raw, err := src.GetManifest(ctx, m.Descriptor)
		if err != nil {
			t.Fatalf("GetManifest %s: %v", m.Descriptor.Digest, err)
		}
		if string(raw) != string(m.Data) {
			t.Fatalf("GetManifest %s: bytes differ (%d bytes, want %d)", m.Descriptor.Digest, len(raw), len(m.Data))
		}
	}
	for i, b := range a.Blobs() {
		checkBlob(t, src, b, 0)
		if i == 1 || len(a.Blobs()) == 1 { // a layer: also from offsets
			for _, off := range []int64{1, b.Descriptor.Size / 2, b.Descriptor.Size} {
				checkBlob(t, src, b, off)
			}
		}
	}
}

func checkBlob(t *testing.T, src pluginapi.Source, b Blob, offset int64) {
	t.Helper()
	rc, err := src.GetBlob(context.Background(), b.Descriptor, offset)
	if err != nil {
		t.Fatalf("GetBlob %s at %d: %v", b.Descriptor.Digest, offset, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("GetBlob %s at %d: read: %v", b.Descriptor.Digest, offset, err)
	}
	want := b.Data[offset:]
	if string(got) != string(want) {
		t.Fatalf("GetBlob %s at %d: got %d bytes (digest %s), want %d bytes", b.Descriptor.Digest, offset, len(got), digest.FromBytes(got), len(want))
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: error %v, want one wrapping %v", what, err, target)
	}
}

// missingBlob is a descriptor of content no test stores.
func missingBlob() ocispec.Descriptor {
	data := []byte("transporttest: this blob is never stored")
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(data), Size: int64(len(data))}
}
