package transporttest_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/layer"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

// memPlugin is a small in-memory transport "mem" used to prove the kit: it
// passes as written, and each bug it can be told to have must make a
// specific subtest fail. With convert it stores what it is given in
// another form, as docker-archive does: gzip'd layers decompressed, and
// manifests rewritten to point at them. With noIndex it refuses indexes.
type memPlugin struct {
	bug     string
	convert bool
	noIndex bool
	mu      sync.Mutex
	stores  map[string]*memStore
}

type memStore struct {
	mu    sync.Mutex
	blobs map[digest.Digest][]byte
	index []memEntry
	// conv maps what was written (a gzip'd layer, a manifest) to what is
	// stored instead (convert only).
	conv map[digest.Digest]ocispec.Descriptor
	sigs map[digest.Digest][][]byte
}

func newMemStore() *memStore {
	return &memStore{blobs: map[digest.Digest][]byte{}, conv: map[digest.Digest]ocispec.Descriptor{}}
}

type memEntry struct {
	name string
	desc ocispec.Descriptor
}

func (p *memPlugin) Transports() []string { return []string{"mem"} }

func (p *memPlugin) Open(_ context.Context, req pluginapi.OpenRequest) (pluginapi.Endpoint, error) {
	if req.Transport != "mem" {
		return nil, fmt.Errorf("transport %q: %w", req.Transport, core.ErrUnsupported)
	}
	if p.bug == "read-only" && req.Mode == pluginapi.ModeWrite {
		return nil, fmt.Errorf("mem is read-only: %w", core.ErrUnsupported)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stores[req.Location]
	if s == nil {
		if req.Mode == pluginapi.ModeRead {
			return nil, fmt.Errorf("mem:%s: %w", req.Location, core.ErrNotFound)
		}
		s = newMemStore()
		p.stores[req.Location] = s
	}
	r := &memReader{s: s, bug: p.bug, convert: p.convert, noIndex: p.noIndex}
	if req.Mode == pluginapi.ModeWrite {
		if p.bug == "caps-lie" {
			return &lyingWriter{memWriter{memReader: r}}, nil
		}
		return &memWriter{memReader: r}, nil
	}
	return r, nil
}

type memReader struct {
	s       *memStore
	bug     string
	convert bool
	noIndex bool
}

func (r *memReader) Close(context.Context) error { return nil }

func (r *memReader) Resolve(_ context.Context, ref string) (ocispec.Descriptor, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	for _, e := range r.s.index {
		if e.name == ref || (ref != "" && e.desc.Digest.String() == ref) {
			return e.desc, nil
		}
	}
	if d := digest.Digest(ref); d.Validate() == nil {
		if b, ok := r.s.blobs[d]; ok {
			return ocispec.Descriptor{MediaType: sniff(b), Digest: d, Size: int64(len(b))}, nil
		}
	}
	if ref == "" && len(r.s.index) == 1 {
		return r.s.index[0].desc, nil
	}
	return ocispec.Descriptor{}, fmt.Errorf("ref %q: %w", ref, core.ErrNotFound)
}

func sniff(b []byte) string {
	if bytes.Contains(b, []byte(`"manifests"`)) {
		return ocispec.MediaTypeImageIndex
	}
	return ocispec.MediaTypeImageManifest
}

func (r *memReader) blob(d digest.Digest) ([]byte, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	b, ok := r.s.blobs[d]
	if !ok {
		if r.bug == "notfound-wrong" {
			return nil, errors.New("no such blob")
		}
		return nil, fmt.Errorf("blob %s: %w", d, core.ErrNotFound)
	}
	return b, nil
}

func (r *memReader) GetManifest(_ context.Context, desc ocispec.Descriptor) ([]byte, error) {
	return r.blob(desc.Digest)
}

func (r *memReader) GetBlob(_ context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	b, err := r.blob(desc.Digest)
	if err != nil {
		return nil, err
	}
	if r.bug == "offset" {
		offset = 0
	}
	return io.NopCloser(bytes.NewReader(b[offset:])), nil
}

func (r *memReader) ListTags(context.Context) ([]string, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	tags := []string{}
	for _, e := range r.s.index {
		if e.name != "" {
			if r.bug == "tag-form" {
				e.name = strings.TrimPrefix(e.name, "kit/")
			}
			tags = append(tags, e.name)
		}
	}
	return tags, nil
}

type memWriter struct {
	*memReader
	stg memStaging
}

func (w *memWriter) HasBlob(_ context.Context, desc ocispec.Descriptor) (bool, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	_, ok := w.s.blobs[desc.Digest]
	_, converted := w.s.conv[desc.Digest]
	return ok || converted, nil
}

func (w *memWriter) PutBlob(_ context.Context, desc ocispec.Descriptor, r io.Reader) error {
	var b []byte
	var err error
	if w.bug == "no-verify" {
		b, err = io.ReadAll(r)
	} else {
		b, err = content.ReadAllVerified(r, desc, 1<<30)
	}
	if err != nil {
		return err
	}
	return w.keep(desc, b)
}

// keep stores a blob's bytes, checked by the caller.
func (w *memWriter) keep(desc ocispec.Descriptor, b []byte) error {
	if w.convert && layer.Detect(b) == layer.Gzip {
		return w.putDecompressed(desc, b)
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.blobs[desc.Digest] = b
	return nil
}

// memStaging holds the files a mem destination staged (stage-blob), in a
// temporary directory of its own.
type memStaging struct {
	mu    sync.Mutex
	dir   string
	files map[string]ocispec.Descriptor
}

func (w *memWriter) StageBlob(_ context.Context, desc ocispec.Descriptor) (string, error) {
	w.stg.mu.Lock()
	defer w.stg.mu.Unlock()
	if w.stg.dir == "" {
		dir, err := os.MkdirTemp("", "transporttest-mem-stage-")
		if err != nil {
			return "", err
		}
		w.stg.dir, w.stg.files = dir, map[string]ocispec.Descriptor{}
	}
	f, err := os.CreateTemp(w.stg.dir, "stage-")
	if err != nil {
		return "", err
	}
	f.Close()
	w.stg.files[f.Name()] = desc
	return f.Name(), nil
}

func (w *memWriter) take(path string, desc ocispec.Descriptor) error {
	w.stg.mu.Lock()
	defer w.stg.mu.Unlock()
	staged, ok := w.stg.files[path]
	if w.bug == "stage-any-path" {
		return nil
	}
	if !ok {
		return fmt.Errorf("%q was not staged here: %w", path, core.ErrInvalid)
	}
	delete(w.stg.files, path)
	if desc.Digest != "" && (staged.Digest != desc.Digest || staged.Size != desc.Size) {
		os.Remove(path)
		return fmt.Errorf("%q was staged for %s: %w", path, staged.Digest, core.ErrInvalid)
	}
	return nil
}

func (w *memWriter) CommitStagedBlob(ctx context.Context, desc ocispec.Descriptor, path string) (err error) {
	if err := w.take(path, desc); err != nil {
		return err
	}
	defer os.Remove(path)
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	switch {
	case !pluginapi.HostVerified(ctx) && w.bug != "stage-trust":
		if err := content.VerifyBytes(b, desc); err != nil {
			return err
		}
	case int64(len(b)) != desc.Size && w.bug != "stage-no-size":
		return &core.SizeMismatchError{Digest: desc.Digest, Expected: desc.Size, Actual: int64(len(b))}
	}
	return w.keep(desc, b)
}

func (w *memWriter) AbortStagedBlob(_ context.Context, path string) error {
	if err := w.take(path, ocispec.Descriptor{}); err != nil {
		return err
	}
	return os.Remove(path)
}

// Close removes what was staged and not committed.
func (w *memWriter) Close(context.Context) error {
	w.stg.mu.Lock()
	defer w.stg.mu.Unlock()
	if w.stg.dir == "" || w.bug == "stage-leak" {
		return nil
	}
	err := os.RemoveAll(w.stg.dir)
	w.stg.dir, w.stg.files = "", nil
	return err
}

// putDecompressed stores a gzip'd layer uncompressed.
func (w *memWriter) putDecompressed(desc ocispec.Descriptor, gz []byte) error {
	rc, _, err := layer.Decompress(bytes.NewReader(gz))
	if err != nil {
		return err
	}
	defer rc.Close()
	plain, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if w.bug == "wrong-diffid" {
		plain = append(plain, make([]byte, 512)...) // still a valid tar
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(plain), Size: int64(len(plain))}
	w.s.blobs[d.Digest] = plain
	w.s.conv[desc.Digest] = d
	return nil
}

// stored is what the blob or manifest written as desc is stored as.
func (w *memWriter) stored(desc ocispec.Descriptor) (ocispec.Descriptor, error) {
	if d, ok := w.s.conv[desc.Digest]; ok {
		return d, nil
	}
	if b, ok := w.s.blobs[desc.Digest]; ok {
		return ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: int64(len(b))}, nil
	}
	return ocispec.Descriptor{}, fmt.Errorf("%s: %w", desc.Digest, core.ErrNotFound)
}

// convertManifest stores the manifest raw (written as desc) rewritten to
// point at what its children are stored as, and returns its descriptor.
func (w *memWriter) convertManifest(desc ocispec.Descriptor, raw []byte) (ocispec.Descriptor, error) {
	m, err := manifest.Parse(raw, desc.MediaType)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	var out []byte
	if m.IsIndex() {
		ix := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
		ix.SchemaVersion = 2
		for _, c := range m.Manifests {
			st, err := w.stored(c)
			if err != nil {
				return ocispec.Descriptor{}, err
			}
			st.Platform = c.Platform
			ix.Manifests = append(ix.Manifests, st)
		}
		out, _ = json.Marshal(ix)
	} else {
		im := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Layers: []ocispec.Descriptor{}}
		im.SchemaVersion = 2
		if im.Config, err = w.stored(m.Config); err != nil {
			return ocispec.Descriptor{}, err
		}
		if w.bug == "config" { // a config that is not the one written
			cfg := append(slices.Clone(w.s.blobs[im.Config.Digest]), '\n')
			im.Config.Digest, im.Config.Size = digest.FromBytes(cfg), int64(len(cfg))
			w.s.blobs[im.Config.Digest] = cfg
		}
		for _, l := range m.Layers {
			st, err := w.stored(l)
			if err != nil {
				return ocispec.Descriptor{}, err
			}
			im.Layers = append(im.Layers, st)
		}
		if w.bug == "drop-layer" {
			im.Layers = im.Layers[:len(im.Layers)-1]
		}
		out, _ = json.Marshal(im)
	}
	d := ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(out), Size: int64(len(out))}
	if m.IsIndex() {
		d.MediaType = ocispec.MediaTypeImageIndex
	} else {
		d.MediaType = ocispec.MediaTypeImageManifest
	}
	w.s.blobs[d.Digest] = out
	w.s.conv[desc.Digest] = d
	if w.bug == "written-digest" { // keeps the written manifest too
		w.s.blobs[desc.Digest] = raw
	}
	return d, nil
}

func (w *memWriter) PutManifest(ctx context.Context, desc ocispec.Descriptor, raw []byte, ref string) error {
	if w.noIndex && bytes.Contains(raw, []byte(`"manifests"`)) && w.bug != "accepts-index" {
		return fmt.Errorf("mem: no indexes here: %w", core.ErrUnsupported)
	}
	untagged := ref == desc.Digest.String()
	if w.convert {
		if err := content.VerifyBytes(raw, desc); err != nil {
			return err
		}
		d, err := w.convertManifest(desc, raw)
		if err != nil {
			return err
		}
		desc = d
	} else if err := w.PutBlob(ctx, desc, bytes.NewReader(raw)); err != nil {
		return err
	}
	if ref == "" {
		return nil
	}
	if untagged {
		ref = ""
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.bug == "lost-tag" && len(w.s.index) > 0 {
		return nil
	}
	w.s.index = slices.DeleteFunc(w.s.index, func(e memEntry) bool { return ref != "" && e.name == ref })
	w.s.index = append(w.s.index, memEntry{name: ref, desc: desc})
	return nil
}

func (w *memWriter) Delete(_ context.Context, ref string) error {
	if w.bug == "delete-noop" {
		return nil
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	n := len(w.s.index)
	w.s.index = slices.DeleteFunc(w.s.index, func(e memEntry) bool { return e.name == ref || e.desc.Digest.String() == ref })
	if len(w.s.index) == n {
		return fmt.Errorf("ref %q: %w", ref, core.ErrNotFound)
	}
	return nil
}

// Signatures implements pluginapi.SignatureLister. Bugs: sigs-reversed
// lists them backwards, sigs-nil-error fails for a manifest without any.
func (r *memReader) Signatures(_ context.Context, d digest.Digest) ([][]byte, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	sigs := slices.Clone(r.s.sigs[d])
	if len(sigs) == 0 && r.bug == "sigs-nil-error" {
		return nil, fmt.Errorf("no signatures for %s: %w", d, core.ErrNotFound)
	}
	if r.bug == "sigs-reversed" {
		slices.Reverse(sigs)
	}
	return append([][]byte{}, sigs...), nil
}

// PutSignatures implements pluginapi.SignatureWriter. Bugs: sigs-append
// adds to earlier signatures, sigs-no-limit takes any set.
func (w *memWriter) PutSignatures(_ context.Context, d digest.Digest, sigs [][]byte) error {
	if w.bug != "sigs-no-limit" {
		if err := pluginapi.CheckSignatures(sigs); err != nil {
			return err
		}
	}
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	if w.s.sigs == nil {
		w.s.sigs = map[digest.Digest][][]byte{}
	}
	kept := make([][]byte, 0, len(sigs))
	for _, s := range sigs {
		kept = append(kept, slices.Clone(s))
	}
	if w.bug == "sigs-append" {
		kept = append(w.s.sigs[d], kept...)
	}
	w.s.sigs[d] = kept
	return nil
}

// lyingWriter claims not to delete, yet deletes.
type lyingWriter struct{ memWriter }

func (l *lyingWriter) Capabilities() []string {
	return slices.DeleteFunc(pluginapi.Capabilities(&l.memWriter), func(c string) bool { return c == pluginapi.CapDelete })
}

// Kit modes of the mem transport.
const (
	modePlain     = ""
	modeConvert   = "convert"   // stores converted, with NAME:TAG-like refs
	modeUnflagged = "unflagged" // converts, but the harness does not say so
	modeNoIndex   = "noindex"   // refuses indexes
)

func memHarness(bug string) transporttest.Harness { return memHarnessFor(modePlain, bug) }

func memHarnessFor(mode, bug string) transporttest.Harness {
	convert := mode == modeConvert || mode == modeUnflagged
	p := &memPlugin{bug: bug, convert: convert, noIndex: mode == modeNoIndex, stores: map[string]*memStore{}}
	var n int
	var mu sync.Mutex
	return transporttest.Harness{
		Plugin:    p,
		Transport: "mem",
		NewLocation: func(t *testing.T) string {
			mu.Lock()
			defer mu.Unlock()
			n++
			return fmt.Sprintf("loc%d", n)
		},
		LayerSize:         20 << 10,
		ConvertsManifests: mode == modeConvert,
		NoIndex:           mode == modeNoIndex,
		TagRef: func(tag string) string {
			if convert {
				return "kit/" + tag + ":v1"
			}
			return tag
		},
	}
}

func TestKitPassesCorrectTransport(t *testing.T) {
	transporttest.Run(t, memHarness(""))
}

// TestKitPassesConvertingTransport: a transport that stores layers
// uncompressed and serves rewritten manifests (and indexes) passes with
// ConvertsManifests.
func TestKitPassesConvertingTransport(t *testing.T) {
	transporttest.Run(t, memHarnessFor(modeConvert, ""))
}

func TestKitPassesNoIndexTransport(t *testing.T) {
	transporttest.Run(t, memHarnessFor(modeNoIndex, ""))
}

// TestKitReadOnly runs the kit on a transport that cannot write, with
// content stored through Seed.
func TestKitReadOnly(t *testing.T) {
	h := memHarness("read-only")
	p := h.Plugin.(*memPlugin)
	h.ReadOnly = true
	h.Seed = func(t *testing.T, loc, ref string, a transporttest.Artifact) {
		p.mu.Lock()
		s := p.stores[loc]
		if s == nil {
			s = newMemStore()
			p.stores[loc] = s
		}
		p.mu.Unlock()
		w := &memWriter{memReader: &memReader{s: s}}
		for _, b := range append(append(a.Blobs(), a.ChildManifests()...), a.Top()) {
			if err := w.PutBlob(context.Background(), b.Descriptor, bytes.NewReader(b.Data)); err != nil {
				t.Fatal(err)
			}
		}
		if ref == "" {
			ref = a.Top().Descriptor.Digest.String()
		}
		if err := w.PutManifest(context.Background(), a.Top().Descriptor, a.Top().Data, ref); err != nil {
			t.Fatal(err)
		}
	}
	transporttest.Run(t, h)
}

const (
	bugEnv  = "TRANSPORTTEST_KIT_BUG"
	modeEnv = "TRANSPORTTEST_KIT_MODE"
)

// TestKitHelper runs the kit on a buggy transport in a child process.
func TestKitHelper(t *testing.T) {
	bug := os.Getenv(bugEnv)
	if bug == "" {
		t.Skip("only runs as a child of TestKitCatchesBugs")
	}
	transporttest.Run(t, memHarnessFor(os.Getenv(modeEnv), bug))
}

func TestKitCatchesBugs(t *testing.T) {
	tests := []struct{ mode, bug, failing string }{
		{modePlain, "no-verify", "DigestMismatch"},
		{modePlain, "offset", "SingleImage"},
		{modePlain, "lost-tag", "ListTags"},
		{modePlain, "delete-noop", "Delete"},
		{modePlain, "notfound-wrong", "NotFound"},
		{modePlain, "caps-lie", "Capabilities"},
		{modePlain, "stage-no-size", "StageBlob"},
		{modePlain, "stage-trust", "StageBlob"},
		{modePlain, "stage-any-path", "StageBlob"},
		{modePlain, "stage-leak", "StageBlob"},
		{modePlain, "sigs-reversed", "Signatures"},
		{modePlain, "sigs-append", "Signatures"},
		{modePlain, "sigs-no-limit", "Signatures"},
		{modePlain, "sigs-nil-error", "Signatures"},
		// A converting transport passes only because the harness says
		// it converts: byte comparison fails it.
		{modeUnflagged, "none", "SingleImage"},
		// What ConvertsManifests still checks.
		{modeConvert, "wrong-diffid", "SingleImage"},
		{modeConvert, "config", "SingleImage"},
		{modeConvert, "drop-layer", "SingleImage"},
		{modeConvert, "written-digest", "SingleImage"},
		{modeConvert, "offset", "SingleImage"},
		{modeConvert, "wrong-diffid", "Index"},
		{modeConvert, "no-verify", "DigestMismatch"},
		{modeConvert, "delete-noop", "Delete"},
		{modeConvert, "tag-form", "ListTags"},
		{modeNoIndex, "accepts-index", "Index"},
	}
	for _, tt := range tests {
		t.Run(tt.mode+"/"+tt.bug+"/"+tt.failing, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestKitHelper$/^"+tt.failing+"$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), bugEnv+"="+tt.bug, modeEnv+"="+tt.mode, "TMPDIR="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the kit passed a transport with bug %q:\n%s", tt.bug, out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestKitHelper/"+tt.failing+" ") {
				t.Fatalf("bug %q did not fail subtest %s:\n%s", tt.bug, tt.failing, out)
			}
		})
	}
}

func TestRandomImagesAreValidAndDeterministic(t *testing.T) {
	a, b := transporttest.RandomImage(1, 2, 1000), transporttest.RandomImage(1, 2, 1000)
	if !bytes.Equal(a.Manifest.Data, b.Manifest.Data) {
		t.Fatal("same seed, different images")
	}
	if c := transporttest.RandomImage(2, 2, 1000); bytes.Equal(a.Layers[0].Data, c.Layers[0].Data) {
		t.Fatal("different seeds, same layer")
	}
	ix := transporttest.RandomIndex(5, 1, 100)
	for dg, data := range transporttest.BlobMap(ix) {
		if err := content.VerifyBytes(data, ocispec.Descriptor{Digest: dg, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
	}
	// Layers are gzip'd tars whose uncompressed digests are the config's diff_ids.
	var cfg ocispec.Image
	if err := json.Unmarshal(a.Config.Data, &cfg); err != nil {
		t.Fatal(err)
	}
	for i, l := range a.Layers {
		zr, err := gzip.NewReader(bytes.NewReader(l.Data))
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(zr)
		if digest.FromBytes(raw) != cfg.RootFS.DiffIDs[i] {
			t.Fatalf("layer %d: diff_id mismatch", i)
		}
		tr := tar.NewReader(bytes.NewReader(raw))
		var size int64
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			size += h.Size
		}
		if size != 1000 {
			t.Fatalf("layer %d holds %d bytes of files, want 1000", i, size)
		}
	}
	if len(transporttest.BlobMap(ix)) != 7 { // index + 2 manifests + 2 configs + 2 layers
		t.Fatalf("index has %d blobs", len(transporttest.BlobMap(ix)))
	}
}
