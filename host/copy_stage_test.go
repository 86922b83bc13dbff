package host_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
	"github.com/stevedore-oci/stevedore/plugins/docker/registry"
	"github.com/stevedore-oci/stevedore/plugins/oci-layout/ocilayout"
)

// spyPlugin serves "oci" through ocilayout (or another plugin's transports,
// spyOn), counting the calls the copy engine makes and injecting faults, so
// tests see which path bytes took.
type spyPlugin struct {
	inner pluginapi.Plugin
	fault string // "" or one of the spy* faults below

	mu       sync.Mutex
	calls    map[string]int
	verified []bool // HostVerified of each CommitStagedBlob
	moved    map[string]string
	// commitGate, when set, holds every CommitStagedBlob until closed.
	commitGate chan struct{}
}

// Faults a spyPlugin can inject.
const (
	spyNoPath      = "no-path"      // BlobPath returns ""
	spyUnreachable = "unreachable"  // StageBlob returns a path the host cannot open
	spyCommitFails = "commit-fails" // CommitStagedBlob fails
)

func newSpy(fault string) *spyPlugin { return spyOn(ocilayout.New(), fault) }

// spyOn is a spyPlugin serving inner's transports.
func spyOn(inner pluginapi.Plugin, fault string) *spyPlugin {
	return &spyPlugin{inner: inner, fault: fault, calls: map[string]int{}, moved: map[string]string{}}
}

func (p *spyPlugin) count(name string) {
	p.mu.Lock()
	p.calls[name]++
	p.mu.Unlock()
}

func (p *spyPlugin) n(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[name]
}

func (p *spyPlugin) Transports() []string { return p.inner.Transports() }

func (p *spyPlugin) Open(ctx context.Context, req pluginapi.OpenRequest) (pluginapi.Endpoint, error) {
	e, err := p.inner.Open(ctx, req)
	if err != nil {
		return nil, err
	}
	return &spyEndpoint{Endpoint: e, p: p}, nil
}

type spyEndpoint struct {
	pluginapi.Endpoint
	p *spyPlugin
}

// Capabilities passes on those of the wrapped endpoint that the spy
// implements too.
func (e *spyEndpoint) Capabilities() []string {
	mine := pluginapi.Capabilities(&spyEndpoint{})
	var caps []string
	for _, c := range pluginapi.Capabilities(e.Endpoint) {
		if slices.Contains(mine, c) {
			caps = append(caps, c)
		}
	}
	return caps
}

func (e *spyEndpoint) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	return e.Endpoint.(pluginapi.Source).Resolve(ctx, ref)
}

func (e *spyEndpoint) GetManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	return e.Endpoint.(pluginapi.Source).GetManifest(ctx, desc)
}

func (e *spyEndpoint) GetBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	e.p.count("GetBlob")
	return e.Endpoint.(pluginapi.Source).GetBlob(ctx, desc, offset)
}

func (e *spyEndpoint) BlobPath(ctx context.Context, desc ocispec.Descriptor) (string, error) {
	e.p.count("BlobPath")
	if e.p.fault == spyNoPath {
		return "", nil
	}
	return e.Endpoint.(pluginapi.BlobPather).BlobPath(ctx, desc)
}

func (e *spyEndpoint) HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	return e.Endpoint.(pluginapi.Destination).HasBlob(ctx, desc)
}

func (e *spyEndpoint) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	e.p.count("PutBlob")
	return e.Endpoint.(pluginapi.Destination).PutBlob(ctx, desc, r)
}

func (e *spyEndpoint) PutManifest(ctx context.Context, desc ocispec.Descriptor, raw []byte, ref string) error {
	return e.Endpoint.(pluginapi.Destination).PutManifest(ctx, desc, raw, ref)
}

func (e *spyEndpoint) PutBlobFile(ctx context.Context, desc ocispec.Descriptor, path string) error {
	e.p.count("PutBlobFile")
	return e.Endpoint.(pluginapi.FilePutter).PutBlobFile(ctx, desc, path)
}

func (e *spyEndpoint) PutBlobFileProgress(ctx context.Context, desc ocispec.Descriptor, path string, progress func(int64)) error {
	e.p.count("PutBlobFileProgress")
	return e.Endpoint.(pluginapi.FileProgressPutter).PutBlobFileProgress(ctx, desc, path, progress)
}

func (e *spyEndpoint) MountBlob(ctx context.Context, desc ocispec.Descriptor, from string) (bool, error) {
	e.p.count("MountBlob")
	return e.Endpoint.(pluginapi.Mounter).MountBlob(ctx, desc, from)
}

func (e *spyEndpoint) CopyBlobFrom(ctx context.Context, desc ocispec.Descriptor, from pluginapi.Endpoint, progress func(int64)) error {
	e.p.count("CopyBlobFrom")
	if f, ok := from.(*spyEndpoint); ok {
		from = f.Endpoint
	}
	return e.Endpoint.(pluginapi.BlobCopier).CopyBlobFrom(ctx, desc, from, progress)
}

func (e *spyEndpoint) StageBlob(ctx context.Context, desc ocispec.Descriptor) (string, error) {
	e.p.count("StageBlob")
	p, err := e.Endpoint.(pluginapi.BlobStager).StageBlob(ctx, desc)
	if err != nil || e.p.fault != spyUnreachable {
		return p, err
	}
	// As seen by a plugin in another mount namespace: the host's view
	// of the path does not exist.
	alt := p + ".elsewhere"
	e.p.mu.Lock()
	e.p.moved[alt] = p
	e.p.mu.Unlock()
	return alt, nil
}

func (e *spyEndpoint) CommitStagedBlob(ctx context.Context, desc ocispec.Descriptor, path string) error {
	e.p.count("CommitStagedBlob")
	if e.p.commitGate != nil {
		select {
		case <-e.p.commitGate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	e.p.mu.Lock()
	e.p.verified = append(e.p.verified, pluginapi.HostVerified(ctx))
	e.p.mu.Unlock()
	if e.p.fault == spyCommitFails {
		_ = e.Endpoint.(pluginapi.BlobStager).AbortStagedBlob(ctx, path)
		return fmt.Errorf("spy: commit of %s refused: %w", desc.Digest, core.ErrDenied)
	}
	return e.Endpoint.(pluginapi.BlobStager).CommitStagedBlob(ctx, desc, path)
}

func (e *spyEndpoint) AbortStagedBlob(ctx context.Context, path string) error {
	e.p.count("AbortStagedBlob")
	e.p.mu.Lock()
	if real, ok := e.p.moved[path]; ok {
		path = real
	}
	e.p.mu.Unlock()
	return e.Endpoint.(pluginapi.BlobStager).AbortStagedBlob(ctx, path)
}

// stageFixture writes a source layout holding img as "v1" and returns a
// host running spy in process.
func stageFixture(t *testing.T, spy *spyPlugin, img transporttest.Image) (h *host.Host, src, dst string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	src, dst = filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	s, err := layout.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range append(img.Blobs(), img.Manifest) {
		if err := s.WriteBlobBytes(ctx, b.Descriptor, b.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Tag(ctx, img.Manifest.Descriptor, "v1"); err != nil {
		t.Fatal(err)
	}
	h, err = host.New(host.Options{SearchPath: []string{t.TempDir()}, InProcess: []pluginapi.Plugin{spy}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, src, dst
}

// checkCopied reads img back from the layout at dir, byte for byte, and
// checks that no temporary file is left.
func checkCopied(t *testing.T, dir string, img transporttest.Image) {
	t.Helper()
	ctx := context.Background()
	s, err := layout.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := s.Resolve(ctx, "v1")
	if err != nil || d.Digest != img.Manifest.Descriptor.Digest {
		t.Fatalf("Resolve v1 = %v, %v; want %s", d.Digest, err, img.Manifest.Descriptor.Digest)
	}
	for _, b := range img.Blobs() {
		p, _ := s.BlobPath(b.Descriptor.Digest)
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, b.Data) {
			t.Fatalf("blob %s: %v, bytes equal %v", b.Descriptor.Digest, err, bytes.Equal(got, b.Data))
		}
	}
	noStaged(t, dir)
}

// noStaged fails if a temporary file is left anywhere in the layout.
func noStaged(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

// With stage-blob and blob-path on both sides, a streamed copy reads the
// source files and writes staged files from the host: neither GetBlob nor
// PutBlob carries a byte, and every commit is host-verified.
func TestCopyStagesBlobs(t *testing.T) {
	spy := newSpy("")
	img := transporttest.RandomImage(1, 3, 256<<10)
	h, src, dst := stageFixture(t, spy, img)
	res, err := h.Copy(context.Background(), "oci:"+src+":v1", "oci:"+dst+":v1", host.CopyOptions{StreamOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	n := len(img.Blobs())
	if res.BlobsCopied != n || res.BytesCopied == 0 {
		t.Fatalf("result %+v, want %d blobs copied", res, n)
	}
	for name, want := range map[string]int{"GetBlob": 0, "PutBlob": 0, "PutBlobFile": 0, "MountBlob": 0, "BlobPath": n, "StageBlob": n, "CommitStagedBlob": n, "AbortStagedBlob": 0} {
		if got := spy.n(name); got != want {
			t.Errorf("%s called %d times, want %d", name, got, want)
		}
	}
	for i, v := range spy.verified {
		if !v {
			t.Errorf("CommitStagedBlob %d was not host-verified", i)
		}
	}
	checkCopied(t, dst, img)
}

// A blob whose bytes are all in gives up its transfer slot while it is
// made durable: with one transfer at a time and every commit held, each
// blob is still staged and written.
func TestCopyNextBlobDuringCommit(t *testing.T) {
	spy := newSpy("")
	spy.commitGate = make(chan struct{})
	img := transporttest.RandomImage(2, 3, 64<<10)
	h, src, dst := stageFixture(t, spy, img)
	done := make(chan error, 1)
	go func() {
		_, err := h.Copy(context.Background(), "oci:"+src+":v1", "oci:"+dst+":v1", host.CopyOptions{StreamOnly: true, Jobs: 1})
		done <- err
	}()
	n := len(img.Blobs())
	deadline := time.Now().Add(10 * time.Second)
	for spy.n("StageBlob") < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	staged := spy.n("StageBlob")
	close(spy.commitGate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if staged != n {
		t.Fatalf("with every commit held: %d of %d blobs staged; want each staged while the ones before wait on their commit", staged, n)
	}
	checkCopied(t, dst, img)
}

// Where a blob cannot be read or staged from the host, the copy falls back
// to GetBlob and PutBlob through the plugins, and aborts the staged file.
func TestCopyStageFallbacks(t *testing.T) {
	for _, tt := range []struct {
		fault string
		want  map[string]int // per blob
	}{
		{spyNoPath, map[string]int{"GetBlob": 1, "StageBlob": 1, "CommitStagedBlob": 1, "PutBlob": 0}},
		{spyUnreachable, map[string]int{"GetBlob": 0, "StageBlob": 1, "AbortStagedBlob": 1, "CommitStagedBlob": 0, "PutBlob": 1}},
	} {
		t.Run(tt.fault, func(t *testing.T) {
			spy := newSpy(tt.fault)
			img := transporttest.RandomImage(2, 2, 128<<10)
			h, src, dst := stageFixture(t, spy, img)
			if _, err := h.Copy(context.Background(), "oci:"+src+":v1", "oci:"+dst+":v1", host.CopyOptions{StreamOnly: true}); err != nil {
				t.Fatal(err)
			}
			n := len(img.Blobs())
			for name, per := range tt.want {
				if got := spy.n(name); got != per*n {
					t.Errorf("%s called %d times, want %d", name, got, per*n)
				}
			}
			checkCopied(t, dst, img)
		})
	}
}

// corruptLayer rewrites the source's copy of img's first layer with one
// byte flipped.
func corruptLayer(t *testing.T, src string, img transporttest.Image) ocispec.Descriptor {
	t.Helper()
	l := img.Layers[0]
	p := filepath.Join(src, "blobs", "sha256", l.Descriptor.Digest.Encoded())
	b := bytes.Clone(l.Data)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return l.Descriptor
}

// Wrong bytes at the source: the host's verification fails the copy,
// naming the source's mismatch, and the staged file is aborted.
func TestCopyStagedCorruptSource(t *testing.T) {
	spy := newSpy("")
	img := transporttest.RandomImage(3, 2, 128<<10)
	h, src, dst := stageFixture(t, spy, img)
	bad := corruptLayer(t, src, img)
	_, err := h.Copy(context.Background(), "oci:"+src+":v1", "oci:"+dst+":v1", host.CopyOptions{StreamOnly: true, Jobs: 1})
	if !errors.Is(err, core.ErrDigestMismatch) || !strings.Contains(err.Error(), bad.Digest.String()) {
		t.Fatalf("copy of a corrupted layer: %v, want a digest mismatch naming %s", err, bad.Digest)
	}
	if spy.n("AbortStagedBlob") < 1 {
		t.Error("the staged file of the corrupted layer was not aborted")
	}
	// The layout the copy created is removed if it holds no blob, else
	// kept with the blobs written (a copy run again does not fetch them).
	if s, err := layout.Open(dst); err == nil {
		if ok, _ := s.HasBlob(context.Background(), bad); ok {
			t.Fatal("corrupted layer is visible in the destination")
		}
		noStaged(t, dst)
	}
}

// A destination that refuses the commit fails the copy with its error.
func TestCopyStagedCommitFails(t *testing.T) {
	spy := newSpy(spyCommitFails)
	img := transporttest.RandomImage(4, 1, 64<<10)
	h, src, dst := stageFixture(t, spy, img)
	_, err := h.Copy(context.Background(), "oci:"+src+":v1", "oci:"+dst+":v1", host.CopyOptions{StreamOnly: true})
	if !errors.Is(err, core.ErrDenied) || !strings.Contains(err.Error(), "commit staged blob") {
		t.Fatalf("copy with a refused commit: %v", err)
	}
	if s, err := layout.Open(dst); err == nil {
		if tags, _ := s.Tags(context.Background()); len(tags) != 0 {
			t.Fatalf("destination tagged after a failed copy: %v", tags)
		}
	}
	noStaged(t, dst)
}

// Cancelling in the middle of a staged write leaves nothing staged behind.
func TestCopyStagedCancelled(t *testing.T) {
	spy := newSpy("")
	img := transporttest.RandomImage(5, 1, 3<<20)
	h, src, dst := stageFixture(t, spy, img)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	progress := func(ev host.Event) {
		if ev.Kind == host.BlobProgress && ev.Desc.Digest == img.Layers[0].Descriptor.Digest {
			cancel()
		}
	}
	_, err := h.Copy(ctx, "oci:"+src+":v1", "oci:"+dst+":v1", host.CopyOptions{StreamOnly: true, Jobs: 1, Progress: progress})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled copy: %v", err)
	}
	// The layout the copy created is removed if it holds no blob, else
	// kept with the blobs written whole.
	if s, err := layout.Open(dst); err == nil {
		if ok, _ := s.HasBlob(context.Background(), img.Layers[0].Descriptor); ok {
			t.Fatal("a layer cancelled mid-write is visible")
		}
		noStaged(t, dst)
	}
}

// A pull from a registry into a layout has the registry plugin write each
// blob straight into the file the layout staged (get-blob-file): the layout
// checks the digest as it commits (not host-verified), and no byte passes
// through the host. A byte flipped in transit fails the copy with a digest
// error naming the blob, and nothing of it becomes visible.
func TestPullIntoStagedFiles(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	img := reg.Seed("r", "v1", 2, 300_000)
	spy := newSpy("")
	h, err := host.New(host.Options{SearchPath: []string{t.TempDir()}, InProcess: []pluginapi.Plugin{spy, registry.New()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	opts := host.CopyOptions{SrcOptions: map[string]string{"tls-verify": "false"}}
	src := "docker://" + reg.Ref("r") + ":v1"

	dst := filepath.Join(t.TempDir(), "dst")
	if _, err := h.Copy(ctx, src, "oci:"+dst+":v1", opts); err != nil {
		t.Fatal(err)
	}
	n := len(img.Blobs)
	for name, want := range map[string]int{"PutBlob": 0, "StageBlob": n, "CommitStagedBlob": n, "AbortStagedBlob": 0} {
		if got := spy.n(name); got != want {
			t.Errorf("%s called %d times, want %d", name, got, want)
		}
	}
	for i, v := range spy.verified {
		if v {
			t.Errorf("CommitStagedBlob %d was host-verified: the host never saw those bytes", i)
		}
	}
	s, err := layout.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	for d, want := range img.Blobs {
		p, _ := s.BlobPath(d)
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("blob %s in the layout: %v", d, err)
		}
	}
	noStaged(t, dst)

	layer := img.Layers[1]
	reg.AddFault(registrytest.Fault{Kind: registrytest.FlipByte, Match: registrytest.MatchBlobGet(layer.Digest), At: 1000})
	bad := filepath.Join(t.TempDir(), "bad")
	_, err = h.Copy(ctx, src, "oci:"+bad+":v1", opts)
	if !errors.Is(err, core.ErrDigestMismatch) || !strings.Contains(err.Error(), layer.Digest.String()) {
		t.Fatalf("pull with a byte flipped in transit: %v, want a digest mismatch naming %s", err, layer.Digest)
	}
	if _, err := os.Stat(filepath.Join(bad, "blobs", "sha256", layer.Digest.Encoded())); err == nil {
		t.Fatal("the corrupted blob became visible")
	}
	if tags := layoutTags(t, bad); len(tags) != 0 {
		t.Fatalf("destination tagged after a failed pull: %v", tags)
	}
	noStaged(t, bad)
}
