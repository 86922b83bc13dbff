package transporttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// unadvertised calls each optional method with harmless arguments; an
// endpoint that has the method without advertising its capability must
// refuse with core.ErrUnsupported.
var unadvertised = map[string]func(ctx context.Context, ep pluginapi.Endpoint, loc string) (bool, error){
	pluginapi.CapSource: func(ctx context.Context, ep pluginapi.Endpoint, _ string) (bool, error) {
		s, ok := ep.(pluginapi.Source)
		if !ok {
			return false, nil
		}
		_, err := s.Resolve(ctx, "")
		return true, err
	},
	pluginapi.CapDest: func(ctx context.Context, ep pluginapi.Endpoint, _ string) (bool, error) {
		d, ok := ep.(pluginapi.Destination)
		if !ok {
			return false, nil
		}
		_, err := d.HasBlob(ctx, missingBlob())
		return true, err
	},
	pluginapi.CapListTags: func(ctx context.Context, ep pluginapi.Endpoint, _ string) (bool, error) {
		l, ok := ep.(pluginapi.TagLister)
		if !ok {
			return false, nil
		}
		_, err := l.ListTags(ctx)
		return true, err
	},
	pluginapi.CapListRepositories: func(ctx context.Context, ep pluginapi.Endpoint, _ string) (bool, error) {
		l, ok := ep.(pluginapi.RepositoryLister)
		if !ok {
			return false, nil
		}
		_, err := l.ListRepositories(ctx)
		return true, err
	},
	pluginapi.CapReferrers: func(ctx context.Context, ep pluginapi.Endpoint, _ string) (bool, error) {
		r, ok := ep.(pluginapi.ReferrerLister)
		if !ok {
			return false, nil
		}
		_, err := r.Referrers(ctx, missingBlob().Digest, "")
		return true, err
	},
	pluginapi.CapDelete: func(ctx context.Context, ep pluginapi.Endpoint, _ string) (bool, error) {
		d, ok := ep.(pluginapi.Deleter)
		if !ok {
			return false, nil
		}
		return true, d.Delete(ctx, "transporttest-never-written")
	},
	pluginapi.CapMount: func(ctx context.Context, ep pluginapi.Endpoint, loc string) (bool, error) {
		m, ok := ep.(pluginapi.Mounter)
		if !ok {
			return false, nil
		}
		_, err := m.MountBlob(ctx, missingBlob(), loc)
		return true, err
	},
	pluginapi.CapCommit: nil, // calling Commit on a reader could have effects; not probed
	pluginapi.CapBlobPath: func(ctx context.Context, ep pluginapi.Endpoint, _ string) (bool, error) {
		b, ok := ep.(pluginapi.BlobPather)
		if !ok {
			return false, nil
		}
		_, err := b.BlobPath(ctx, missingBlob())
		return true, err
	},
	pluginapi.CapPutBlobFile: func(ctx context.Context, ep pluginapi.Endpoint, _ string) (bool, error) {
		f, ok := ep.(pluginapi.FilePutter)
		if !ok {
			return false, nil
		}
		return true, f.PutBlobFile(ctx, missingBlob(), filepath.Join(os.TempDir(), "transporttest-no-such-file"))
	},
	pluginapi.CapGetBlobFile: func(ctx context.Context, ep pluginapi.Endpoint, _ string) (bool, error) {
		g, ok := ep.(pluginapi.BlobFileGetter)
		if !ok {
			return false, nil
		}
		return true, g.GetBlobToFile(ctx, missingBlob(), filepath.Join(os.TempDir(), "transporttest-no-such-file"), func(int64) {})
	},
	pluginapi.CapCopyBlob: func(ctx context.Context, ep pluginapi.Endpoint, _ string) (bool, error) {
		c, ok := ep.(pluginapi.BlobCopier)
		if !ok {
			return false, nil
		}
		return true, c.CopyBlobFrom(ctx, missingBlob(), foreignEndpoint{}, func(int64) {})
	},
	pluginapi.CapPutBlobFileProgress: func(ctx context.Context, ep pluginapi.Endpoint, _ string) (bool, error) {
		f, ok := ep.(pluginapi.FileProgressPutter)
		if !ok {
			return false, nil
		}
		return true, f.PutBlobFileProgress(ctx, missingBlob(), filepath.Join(os.TempDir(), "transporttest-no-such-file"), func(int64) {})
	},
	pluginapi.CapStageBlob: func(ctx context.Context, ep pluginapi.Endpoint, _ string) (bool, error) {
		s, ok := ep.(pluginapi.BlobStager)
		if !ok {
			return false, nil
		}
		p, err := s.StageBlob(ctx, missingBlob())
		if err == nil {
			_ = s.AbortStagedBlob(ctx, p)
		}
		return true, err
	},
	pluginapi.CapSignatures: func(ctx context.Context, ep pluginapi.Endpoint, _ string) (bool, error) {
		s, ok := ep.(pluginapi.SignatureLister)
		if !ok {
			return false, nil
		}
		_, err := s.Signatures(ctx, missingBlob().Digest)
		return true, err
	},
	pluginapi.CapPutSignatures: func(ctx context.Context, ep pluginapi.Endpoint, _ string) (bool, error) {
		s, ok := ep.(pluginapi.SignatureWriter)
		if !ok {
			return false, nil
		}
		return true, s.PutSignatures(ctx, missingBlob().Digest, [][]byte{[]byte("\xa3transporttest")})
	},
}

func (k *kit) testCapabilities(t *testing.T) {
	ctx := context.Background()
	if !slices.Contains(k.h.Plugin.Transports(), k.h.Transport) {
		t.Fatalf("Transports() = %v, does not list %q", k.h.Plugin.Transports(), k.h.Transport)
	}
	if _, err := k.h.Plugin.Open(ctx, pluginapi.OpenRequest{Transport: "transporttest-no-such-transport", Location: k.h.NewLocation(t), Mode: pluginapi.ModeRead}); err == nil {
		t.Error("Open accepted a transport name it does not serve")
	}
	loc := k.h.NewLocation(t)
	k.store(t, loc, RandomImage(100, 1, 1000), "v1")
	checkUnadvertised := func(ep pluginapi.Endpoint) {
		t.Helper()
		caps := capsOf(ep)
		for c, probe := range unadvertised {
			if slices.Contains(caps, c) || probe == nil {
				continue
			}
			if called, err := probe(ctx, ep, loc); called {
				wantErr(t, fmt.Sprintf("%s on an endpoint that does not advertise it (%v)", c, caps), err, core.ErrUnsupported)
			}
		}
	}
	src, _ := k.source(t, loc)
	checkUnadvertised(src)
	t.Logf("ModeRead capabilities: %v", capsOf(src))
	if k.h.ReadOnly {
		ep, err := k.openErr(t, k.h.NewLocation(t), pluginapi.ModeWrite)
		if err == nil && has(ep, pluginapi.CapDest) {
			t.Fatal("ReadOnly transport advertises destination")
		}
		return
	}
	dst, _ := k.dest(t, k.h.NewLocation(t))
	checkUnadvertised(dst)
	t.Logf("ModeWrite capabilities: %v", capsOf(dst))
}

func (k *kit) testSingleImage(t *testing.T) {
	ctx := context.Background()
	loc := k.h.NewLocation(t)
	img := RandomImage(1, 3, k.h.LayerSize)
	if k.h.ReadOnly {
		k.store(t, loc, img, "v1")
	} else {
		ep, d := k.dest(t, loc)
		for _, b := range img.Blobs() {
			if ok, err := d.HasBlob(ctx, b.Descriptor); ok || err != nil {
				t.Fatalf("HasBlob before PutBlob = %v, %v; want false, nil", ok, err)
			}
			if err := d.PutBlob(ctx, b.Descriptor, bytes.NewReader(b.Data)); err != nil {
				t.Fatalf("PutBlob: %v", err)
			}
			if ok, err := d.HasBlob(ctx, b.Descriptor); !ok || err != nil {
				t.Fatalf("HasBlob after PutBlob = %v, %v; want true, nil", ok, err)
			}
		}
		if err := d.PutManifest(ctx, img.Manifest.Descriptor, img.Manifest.Data, k.writeRef(img, "v1")); err != nil {
			t.Fatalf("PutManifest: %v", err)
		}
		if !k.h.WriteThenRead && has(ep, pluginapi.CapSource) {
			k.check(t, as[pluginapi.Source](t, ep, pluginapi.CapSource), img, k.readRef(img, "v1"))
		}
		finish(t, ep)
	}
	_, src := k.source(t, loc)
	served := k.check(t, src, img, k.readRef(img, "v1"))
	if !k.h.NoDigestRefs {
		k.check(t, src, img, served.Digest.String())
	}
	if k.h.SingleImage || k.h.NoTags {
		k.check(t, src, img, "")
	}
}

func (k *kit) testIndex(t *testing.T) {
	if k.h.NoIndex {
		k.testNoIndex(t)
		return
	}
	loc := k.h.NewLocation(t)
	ix := RandomIndex(10, 2, k.h.LayerSize)
	k.store(t, loc, ix, "multi")
	_, src := k.source(t, loc)
	top := k.check(t, src, ix, k.readRef(ix, "multi"))
	if k.h.NoDigestRefs {
		return
	}
	children := ix.ChildManifests()
	if k.h.ConvertsManifests {
		// Each image was converted too: read it by its served digest.
		served := servedManifests(t, src, top)
		for i := range children {
			children[i].Descriptor = served[i]
		}
	}
	for i, im := range ix.Images {
		k.check(t, src, im, children[i].Descriptor.Digest.String())
	}
}

// testNoIndex: a format that cannot hold an index refuses one, with
// core.ErrUnsupported so that the host can tell the user to pick a
// platform, rather than storing something else.
func (k *kit) testNoIndex(t *testing.T) {
	if k.h.ReadOnly {
		t.Skip("the format cannot hold an index (NoIndex) and the transport cannot write")
	}
	ix := RandomIndex(10, 1, 1000)
	ep, d := k.dest(t, k.h.NewLocation(t))
	putArtifact(t, d, ix) // the images are accepted
	err := d.PutManifest(context.Background(), ix.Index.Descriptor, ix.Index.Data, k.writeRef(ix, "multi"))
	wantErr(t, "PutManifest of an index on a NoIndex format", err, core.ErrUnsupported)
	_ = ep.Close(context.Background())
}

func (k *kit) testUntagged(t *testing.T) {
	if k.h.NoDigestRefs || k.h.NoTags {
		t.Skip("covered by SingleImage (NoTags) or not addressable (NoDigestRefs)")
	}
	loc := k.h.NewLocation(t)
	img := RandomImage(20, 1, 1000)
	k.store(t, loc, img) // written with its own digest as ref
	ep, src := k.source(t, loc)
	if k.h.ConvertsManifests {
		// The written digest is gone; the only image is the default.
		served := k.check(t, src, img, "")
		k.check(t, src, img, served.Digest.String())
	} else {
		checkArtifact(t, src, img, img.Manifest.Descriptor.Digest.String())
	}
	if has(ep, pluginapi.CapListTags) {
		// A registry may not know a repository that holds no tag
		// (distribution answers NAME_UNKNOWN): not found counts as none.
		tags, err := as[pluginapi.TagLister](t, ep, pluginapi.CapListTags).ListTags(context.Background())
		if err != nil && !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("ListTags: %v", err)
		}
		if len(tags) != 0 {
			t.Fatalf("ListTags after an untagged write = %v, want none", tags)
		}
	}
}

// testListRepositories: an endpoint that lists repositories lists its own
// location once an image is stored there.
func (k *kit) testListRepositories(t *testing.T) {
	loc := k.h.NewLocation(t)
	k.store(t, loc, RandomImage(32, 1, 1000), "a")
	ep, _ := k.source(t, loc)
	if !has(ep, pluginapi.CapListRepositories) {
		t.Skipf("source does not advertise %q", pluginapi.CapListRepositories)
	}
	locs, err := as[pluginapi.RepositoryLister](t, ep, pluginapi.CapListRepositories).ListRepositories(context.Background())
	if err != nil {
		t.Fatalf("ListRepositories: %v", err)
	}
	if !slices.Contains(locs, loc) {
		t.Fatalf("ListRepositories at %q = %v, does not list it", loc, locs)
	}
}

func (k *kit) testListTags(t *testing.T) {
	if k.h.NoTags {
		t.Skip("the format has no tags (NoTags)")
	}
	loc := k.h.NewLocation(t)
	a := RandomImage(30, 1, 1000)
	if k.h.SingleImage {
		k.store(t, loc, a, "a", "b", "c")
	} else {
		k.store(t, loc, a, "a", "b")
		k.store(t, loc, RandomImage(31, 1, 1000), "c")
	}
	ep, _ := k.source(t, loc)
	if !has(ep, pluginapi.CapListTags) {
		t.Skipf("source does not advertise %q", pluginapi.CapListTags)
	}
	tags, err := as[pluginapi.TagLister](t, ep, pluginapi.CapListTags).ListTags(context.Background())
	if err != nil {
		t.Fatalf("ListTags: %v", err)
	}
	slices.Sort(tags)
	want := []string{k.tag("a"), k.tag("b"), k.tag("c")}
	slices.Sort(want)
	if !slices.Equal(tags, want) {
		t.Fatalf("ListTags = %v, want %v", tags, want)
	}
}

// deleter opens loc with the mode that offers Delete, if any.
func (k *kit) deleter(t *testing.T, loc string) (pluginapi.Endpoint, pluginapi.Deleter) {
	t.Helper()
	modes := []pluginapi.Mode{pluginapi.ModeWrite, pluginapi.ModeRead}
	if k.h.ReadOnly {
		modes = modes[1:]
	}
	for _, m := range modes {
		ep := k.open(t, loc, m)
		if has(ep, pluginapi.CapDelete) {
			return ep, as[pluginapi.Deleter](t, ep, pluginapi.CapDelete)
		}
	}
	return nil, nil
}

func (k *kit) testDelete(t *testing.T) {
	if k.h.NoTags {
		t.Skip("the format has no tags (NoTags)")
	}
	ctx := context.Background()
	loc := k.h.NewLocation(t)
	a := RandomImage(40, 1, 1000)
	k.store(t, loc, a, "keep", "drop")
	var b Image
	var bDigest string // what b is deleted by: the digest it is served under
	if !k.h.SingleImage && !k.h.NoDigestRefs {
		b = RandomImage(41, 1, 1000)
		k.store(t, loc, b, "gone")
		bDigest = b.Manifest.Descriptor.Digest.String()
		if k.h.ConvertsManifests {
			bep, src := k.source(t, loc)
			bDigest = k.check(t, src, b, k.tag("gone")).Digest.String()
			_ = bep.Close(ctx)
		}
	}
	ep, del := k.deleter(t, loc)
	if del == nil {
		t.Skipf("no endpoint advertises %q", pluginapi.CapDelete)
	}
	if err := del.Delete(ctx, k.tag("drop")); err != nil {
		t.Fatalf("Delete(%s): %v", k.tag("drop"), err)
	}
	wantErr(t, "Delete of a deleted tag", del.Delete(ctx, k.tag("drop")), core.ErrNotFound)
	if bDigest != "" {
		if err := del.Delete(ctx, bDigest); err != nil {
			t.Fatalf("Delete(digest): %v", err)
		}
	}
	finish(t, ep)
	rep, src := k.source(t, loc)
	_, err := src.Resolve(ctx, k.tag("drop"))
	wantErr(t, "Resolve of a deleted tag", err, core.ErrNotFound)
	k.check(t, src, a, k.tag("keep"))
	if bDigest != "" {
		_, err := src.Resolve(ctx, k.tag("gone"))
		wantErr(t, "Resolve of a tag whose manifest was deleted by digest", err, core.ErrNotFound)
	}
	if has(rep, pluginapi.CapListTags) {
		tags, err := as[pluginapi.TagLister](t, rep, pluginapi.CapListTags).ListTags(ctx)
		if err != nil {
			t.Fatalf("ListTags: %v", err)
		}
		if !slices.Equal(tags, []string{k.tag("keep")}) {
			t.Fatalf("ListTags after Delete = %v, want [%s]", tags, k.tag("keep"))
		}
	}
}

func (k *kit) testDigestMismatch(t *testing.T) {
	if k.h.ReadOnly {
		t.Skip("read-only transport")
	}
	ctx := context.Background()
	loc := k.h.NewLocation(t)
	ep, d := k.dest(t, loc)
	good := NewBlob("application/octet-stream", bytes.Repeat([]byte("good"), 5000))
	bad := bytes.Repeat([]byte("bad!"), 5000) // same size, other digest
	notVisible := func(what string) {
		t.Helper()
		if ok, err := d.HasBlob(ctx, good.Descriptor); ok || err != nil {
			t.Fatalf("after %s: HasBlob = %v, %v; want false, nil", what, ok, err)
		}
	}
	wantErr(t, "PutBlob with wrong content", d.PutBlob(ctx, good.Descriptor, bytes.NewReader(bad)), core.ErrDigestMismatch)
	notVisible("PutBlob with wrong content")
	if err := d.PutBlob(ctx, good.Descriptor, bytes.NewReader(good.Data[:100])); err == nil {
		t.Fatal("PutBlob accepted a short stream")
	}
	notVisible("PutBlob with a short stream")
	if err := d.PutBlob(ctx, good.Descriptor, bytes.NewReader(append(slices.Clone(good.Data), 'x'))); err == nil {
		t.Fatal("PutBlob accepted a long stream")
	}
	notVisible("PutBlob with a long stream")
	if has(ep, pluginapi.CapPutBlobFile) {
		p := filepath.Join(t.TempDir(), "bad")
		if err := os.WriteFile(p, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "PutBlobFile with wrong content", as[pluginapi.FilePutter](t, ep, pluginapi.CapPutBlobFile).PutBlobFile(ctx, good.Descriptor, p), core.ErrDigestMismatch)
		notVisible("PutBlobFile with wrong content")
	}
	// A failed write leaves nothing behind that blocks a good one.
	if err := d.PutBlob(ctx, good.Descriptor, bytes.NewReader(good.Data)); err != nil {
		t.Fatalf("PutBlob after failures: %v", err)
	}
	img := RandomImage(50, 1, 1000)
	putArtifact(t, d, img)
	wrong := slices.Clone(img.Manifest.Data)
	wrong[len(wrong)-1] = ' ' // still the same size
	wantErr(t, "PutManifest with bytes that do not match the descriptor", d.PutManifest(ctx, img.Manifest.Descriptor, wrong, k.writeRef(img, "v1")), core.ErrDigestMismatch)
	if has(ep, pluginapi.CapSource) && !k.h.WriteThenRead {
		_, err := as[pluginapi.Source](t, ep, pluginapi.CapSource).Resolve(ctx, k.readRef(img, "v1"))
		wantErr(t, "Resolve after a refused PutManifest", err, core.ErrNotFound)
	}
}

func (k *kit) testNotFound(t *testing.T) {
	ctx := context.Background()
	loc := k.h.NewLocation(t)
	k.store(t, loc, RandomImage(60, 1, 1000), "v1")
	ep, src := k.source(t, loc)
	missing := missingBlob()
	if !k.h.NoTags {
		_, err := src.Resolve(ctx, k.tag("transporttest-missing"))
		wantErr(t, "Resolve of a missing tag", err, core.ErrNotFound)
	}
	if !k.h.NoDigestRefs {
		_, err := src.Resolve(ctx, missing.Digest.String())
		wantErr(t, "Resolve of a missing digest", err, core.ErrNotFound)
	}
	_, err := src.GetManifest(ctx, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: missing.Digest, Size: missing.Size})
	wantErr(t, "GetManifest of a missing manifest", err, core.ErrNotFound)
	rc, err := src.GetBlob(ctx, missing, 0)
	if err == nil {
		// Some transports only learn on the first read.
		_, err = rc.Read(make([]byte, 1))
		rc.Close()
	}
	wantErr(t, "GetBlob of a missing blob", err, core.ErrNotFound)
	if has(ep, pluginapi.CapBlobPath) {
		_, err := as[pluginapi.BlobPather](t, ep, pluginapi.CapBlobPath).BlobPath(ctx, missing)
		wantErr(t, "BlobPath of a missing blob", err, core.ErrNotFound)
	}
	if !k.h.ReadOnly {
		_, d := k.dest(t, loc)
		if ok, err := d.HasBlob(ctx, missing); ok || err != nil {
			t.Fatalf("HasBlob of a missing blob = %v, %v; want false, nil", ok, err)
		}
	}
}

func (k *kit) testConcurrentPutBlob(t *testing.T) {
	if k.h.ReadOnly {
		t.Skip("read-only transport")
	}
	ctx := context.Background()
	loc := k.h.NewLocation(t)
	img := RandomImage(70, 8, k.h.LayerSize/2)
	ep, d := k.dest(t, loc)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Everyone writes the config (the same blob) and its own layer.
			if err := d.PutBlob(ctx, img.Config.Descriptor, bytes.NewReader(img.Config.Data)); err != nil {
				errs <- fmt.Errorf("goroutine %d: PutBlob config: %w", i, err)
			}
			l := img.Layers[i]
			if err := d.PutBlob(ctx, l.Descriptor, bytes.NewReader(l.Data)); err != nil {
				errs <- fmt.Errorf("goroutine %d: PutBlob layer: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for _, b := range img.Blobs() {
		if ok, err := d.HasBlob(ctx, b.Descriptor); !ok || err != nil {
			t.Fatalf("HasBlob %s after concurrent PutBlob = %v, %v", b.Descriptor.Digest, ok, err)
		}
	}
	if err := d.PutManifest(ctx, img.Manifest.Descriptor, img.Manifest.Data, k.writeRef(img, "v1")); err != nil {
		t.Fatalf("PutManifest: %v", err)
	}
	finish(t, ep)
	_, src := k.source(t, loc)
	k.check(t, src, img, k.readRef(img, "v1"))
}

// testPutBlobExisting: storing a blob the destination already has succeeds,
// whether the transport reads the stream or returns at once without reading
// it. The blob is large enough (4 MiB) that a sender still writing when the
// transport returns early notices.
func (k *kit) testPutBlobExisting(t *testing.T) {
	if k.h.ReadOnly {
		t.Skip("read-only transport")
	}
	ctx := context.Background()
	loc := k.h.NewLocation(t)
	img := RandomImage(75, 1, 4<<20)
	ep, d := k.dest(t, loc)
	for round := range 2 {
		for _, b := range img.Blobs() {
			if err := d.PutBlob(ctx, b.Descriptor, bytes.NewReader(b.Data)); err != nil {
				t.Fatalf("PutBlob %s (round %d): %v", b.Descriptor.Digest, round+1, err)
			}
		}
	}
	if err := d.PutManifest(ctx, img.Manifest.Descriptor, img.Manifest.Data, k.writeRef(img, "v1")); err != nil {
		t.Fatalf("PutManifest: %v", err)
	}
	if err := d.PutManifest(ctx, img.Manifest.Descriptor, img.Manifest.Data, k.writeRef(img, "v1")); err != nil {
		t.Fatalf("PutManifest again: %v", err)
	}
	finish(t, ep)
	_, src := k.source(t, loc)
	k.check(t, src, img, k.readRef(img, "v1"))
}

func (k *kit) testBlobPath(t *testing.T) {
	loc := k.h.NewLocation(t)
	img := RandomImage(80, 2, 1000)
	k.store(t, loc, img, "v1")
	ep, src := k.source(t, loc)
	if !has(ep, pluginapi.CapBlobPath) {
		t.Skipf("source does not advertise %q", pluginapi.CapBlobPath)
	}
	bp := as[pluginapi.BlobPather](t, ep, pluginapi.CapBlobPath)
	if k.h.ConvertsManifests {
		// The paths are those of what is stored: the served blobs.
		desc := k.check(t, src, img, k.readRef(img, "v1"))
		img = servedImage(t, src, desc)
	}
	for _, b := range append(img.Blobs(), img.Manifest) {
		p, err := bp.BlobPath(context.Background(), b.Descriptor)
		if err != nil {
			t.Fatalf("BlobPath %s: %v", b.Descriptor.Digest, err)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("BlobPath %s = %s: %v", b.Descriptor.Digest, p, err)
		}
		if !bytes.Equal(got, b.Data) {
			t.Fatalf("BlobPath %s = %s holds other content", b.Descriptor.Digest, p)
		}
	}
}

func (k *kit) testGetBlobToFile(t *testing.T) {
	ctx := context.Background()
	loc := k.h.NewLocation(t)
	img := RandomImage(81, 2, k.h.LayerSize)
	k.store(t, loc, img, "v1")
	ep, src := k.source(t, loc)
	if !has(ep, pluginapi.CapGetBlobFile) {
		t.Skipf("source does not advertise %q", pluginapi.CapGetBlobFile)
	}
	g := as[pluginapi.BlobFileGetter](t, ep, pluginapi.CapGetBlobFile)
	if k.h.ConvertsManifests {
		desc := k.check(t, src, img, k.readRef(img, "v1"))
		img = servedImage(t, src, desc)
	}
	dir := t.TempDir()
	empty := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for i, b := range img.Blobs() {
		p := empty(fmt.Sprint(i))
		var log progressLog
		if err := g.GetBlobToFile(ctx, b.Descriptor, p, log.report); err != nil {
			t.Fatalf("GetBlobToFile %s: %v", b.Descriptor.Digest, err)
		}
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(data, b.Data) {
			t.Fatalf("GetBlobToFile %s wrote %d bytes (%v), not the blob's %d", b.Descriptor.Digest, len(data), err, len(b.Data))
		}
		log.check(t, "GetBlobToFile", b.Descriptor, true)
	}
	blob := img.Blobs()[0]
	if err := g.GetBlobToFile(ctx, missingBlob(), empty("missing"), nil); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("GetBlobToFile of a missing blob: %v, want not found", err)
	}
	if err := g.GetBlobToFile(ctx, blob.Descriptor, filepath.Join(dir, "absent", "file"), nil); !errors.Is(err, core.ErrUnsupported) {
		t.Fatalf("GetBlobToFile into a file it cannot open: %v, want unsupported (the host then streams)", err)
	}
	full := filepath.Join(dir, "full")
	if err := os.WriteFile(full, []byte("already here"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := g.GetBlobToFile(ctx, blob.Descriptor, full, nil); err == nil {
		t.Fatal("GetBlobToFile into a file that is not empty succeeded")
	}
	if data, _ := os.ReadFile(full); string(data) != "already here" {
		t.Fatalf("GetBlobToFile changed a file that was not empty: %q", data)
	}
	// A descriptor whose size is not the blob's: refused.
	short := blob.Descriptor
	short.Size--
	if err := g.GetBlobToFile(ctx, short, empty("short"), nil); !errors.Is(err, core.ErrSizeMismatch) {
		t.Fatalf("GetBlobToFile with a size one byte short: %v, want a size mismatch", err)
	}
}

// foreignEndpoint is an endpoint no plugin opened.
type foreignEndpoint struct{}

func (foreignEndpoint) Close(context.Context) error { return nil }

func (k *kit) testCopyBlob(t *testing.T) {
	if k.h.ReadOnly {
		t.Skip("read-only transport")
	}
	ctx := context.Background()
	srcLoc := k.h.NewLocation(t)
	img := RandomImage(82, 2, k.h.LayerSize)
	k.store(t, srcLoc, img, "v1")
	loc := k.h.NewLocation(t)
	ep, d := k.dest(t, loc)
	if !has(ep, pluginapi.CapCopyBlob) {
		t.Skipf("destination does not advertise %q", pluginapi.CapCopyBlob)
	}
	c := as[pluginapi.BlobCopier](t, ep, pluginapi.CapCopyBlob)
	from, src := k.source(t, srcLoc)
	if k.h.ConvertsManifests {
		desc := k.check(t, src, img, k.readRef(img, "v1"))
		img = servedImage(t, src, desc)
	}
	blob := img.Blobs()[0]
	// Refusals first: nothing may be visible after them.
	if err := c.CopyBlobFrom(ctx, blob.Descriptor, foreignEndpoint{}, nil); !errors.Is(err, core.ErrUnsupported) {
		t.Fatalf("CopyBlobFrom an endpoint the plugin did not open: %v, want unsupported (the host then streams)", err)
	}
	if err := c.CopyBlobFrom(ctx, missingBlob(), from, nil); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("CopyBlobFrom of a missing blob: %v, want not found", err)
	}
	short := blob.Descriptor
	short.Size--
	if err := c.CopyBlobFrom(ctx, short, from, nil); !errors.Is(err, core.ErrSizeMismatch) && !errors.Is(err, core.ErrDigestMismatch) {
		t.Fatalf("CopyBlobFrom with a size one byte short: %v, want a size or digest mismatch", err)
	}
	if ok, _ := d.HasBlob(ctx, blob.Descriptor); ok {
		t.Fatal("a refused CopyBlobFrom left the blob visible")
	}
	for _, b := range img.Blobs() {
		var log progressLog
		if err := c.CopyBlobFrom(ctx, b.Descriptor, from, log.report); err != nil {
			t.Fatalf("CopyBlobFrom %s: %v", b.Descriptor.Digest, err)
		}
		if ok, err := d.HasBlob(ctx, b.Descriptor); !ok || err != nil {
			t.Fatalf("HasBlob after CopyBlobFrom = %v, %v", ok, err)
		}
		log.check(t, "CopyBlobFrom", b.Descriptor, true)
	}
	if err := d.PutManifest(ctx, img.Manifest.Descriptor, img.Manifest.Data, k.writeRef(img, "v1")); err != nil {
		t.Fatalf("PutManifest: %v", err)
	}
	finish(t, ep)
	_, back := k.source(t, loc)
	k.check(t, back, img, k.readRef(img, "v1"))
}

func (k *kit) testPutBlobFile(t *testing.T) {
	if k.h.ReadOnly {
		t.Skip("read-only transport")
	}
	ctx := context.Background()
	ep, _ := k.dest(t, k.h.NewLocation(t))
	if !has(ep, pluginapi.CapPutBlobFile) {
		t.Skipf("destination does not advertise %q", pluginapi.CapPutBlobFile)
	}
	modes := []string{"PutBlobFile"}
	if has(ep, pluginapi.CapPutBlobFileProgress) {
		modes = append(modes, "PutBlobFileProgress")
	}
	if err := ep.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	img := RandomImage(90, 2, k.h.LayerSize)
	dir := t.TempDir()
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			loc := k.h.NewLocation(t)
			ep, d := k.dest(t, loc)
			put := putFileFunc(ctx, t, ep, mode)
			for i, b := range img.Blobs() {
				p := filepath.Join(dir, fmt.Sprint(i))
				if err := os.WriteFile(p, b.Data, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := put(b.Descriptor, p); err != nil {
					t.Fatalf("%s %s: %v", mode, b.Descriptor.Digest, err)
				}
				if ok, err := d.HasBlob(ctx, b.Descriptor); !ok || err != nil {
					t.Fatalf("HasBlob after %s = %v, %v", mode, ok, err)
				}
			}
			if err := put(missingBlob(), filepath.Join(dir, "missing")); err == nil {
				t.Fatalf("%s of a missing file succeeded", mode)
			}
			// A file whose content does not match: refused, and never visible.
			wrong := NewBlob("application/octet-stream", []byte("transporttest: the content the descriptor promises"))
			bad := filepath.Join(dir, "wrong")
			if err := os.WriteFile(bad, []byte("transporttest: other content, of the same length!!"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := put(wrong.Descriptor, bad); !errors.Is(err, core.ErrDigestMismatch) && !errors.Is(err, core.ErrSizeMismatch) {
				t.Fatalf("%s of wrong content: %v, want a digest or size mismatch", mode, err)
			}
			if ok, _ := d.HasBlob(ctx, wrong.Descriptor); ok {
				t.Fatalf("%s made wrong content visible", mode)
			}
			if err := d.PutManifest(ctx, img.Manifest.Descriptor, img.Manifest.Data, k.writeRef(img, "v1")); err != nil {
				t.Fatalf("PutManifest: %v", err)
			}
			finish(t, ep)
			_, src := k.source(t, loc)
			k.check(t, src, img, k.readRef(img, "v1"))
		})
	}
}

// putFileFunc returns a call of PutBlobFile, or of PutBlobFileProgress that
// checks the counts reported: never outside [0, size], and on success the
// last one is the size.
func putFileFunc(ctx context.Context, t *testing.T, ep pluginapi.Endpoint, mode string) func(ocispec.Descriptor, string) error {
	if mode == "PutBlobFile" {
		fp := as[pluginapi.FilePutter](t, ep, pluginapi.CapPutBlobFile)
		return func(desc ocispec.Descriptor, path string) error { return fp.PutBlobFile(ctx, desc, path) }
	}
	pp := as[pluginapi.FileProgressPutter](t, ep, pluginapi.CapPutBlobFileProgress)
	return func(desc ocispec.Descriptor, path string) error {
		var log progressLog
		err := pp.PutBlobFileProgress(ctx, desc, path, log.report)
		log.check(t, "PutBlobFileProgress", desc, err == nil)
		return err
	}
}

// progressLog records the counts a transfer reports (from any goroutine).
type progressLog struct {
	mu  sync.Mutex
	got []int64
}

func (p *progressLog) report(n int64) {
	p.mu.Lock()
	p.got = append(p.got, n)
	p.mu.Unlock()
}

// check fails t when a count was outside [0, desc.Size] or, for a transfer
// that succeeded, the last one is not the size.
func (p *progressLog) check(t *testing.T, call string, desc ocispec.Descriptor, succeeded bool) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, n := range p.got {
		if n < 0 || n > desc.Size {
			t.Errorf("%s %s reported %d bytes moved of %d", call, desc.Digest, n, desc.Size)
		}
	}
	if succeeded && desc.Size > 0 && (len(p.got) == 0 || p.got[len(p.got)-1] != desc.Size) {
		t.Errorf("%s %s of %d bytes reported %v: the last report must be the size", call, desc.Digest, desc.Size, p.got)
	}
}

func (k *kit) testMount(t *testing.T) {
	if k.h.ReadOnly {
		t.Skip("read-only transport")
	}
	ctx := context.Background()
	from := k.h.NewLocation(t)
	img := RandomImage(110, 2, k.h.LayerSize)
	k.store(t, from, img, "v1")
	loc := k.h.NewLocation(t)
	ep, d := k.dest(t, loc)
	if !has(ep, pluginapi.CapMount) {
		t.Skipf("destination does not advertise %q", pluginapi.CapMount)
	}
	m := as[pluginapi.Mounter](t, ep, pluginapi.CapMount)
	mounted := 0
	for _, b := range img.Blobs() {
		ok, err := m.MountBlob(ctx, b.Descriptor, from)
		if err != nil {
			t.Fatalf("MountBlob %s from %s: %v", b.Descriptor.Digest, from, err)
		}
		if ok {
			mounted++
			if present, err := d.HasBlob(ctx, b.Descriptor); !present || err != nil {
				t.Fatalf("HasBlob after a mount that reported success = %v, %v", present, err)
			}
		} else if err := d.PutBlob(ctx, b.Descriptor, bytes.NewReader(b.Data)); err != nil {
			t.Fatalf("PutBlob after a refused mount: %v", err)
		}
	}
	t.Logf("%d of %d blobs mounted", mounted, len(img.Blobs()))
	ok, err := m.MountBlob(ctx, missingBlob(), from)
	if ok {
		t.Fatal("MountBlob of a blob the source lacks reported success")
	}
	if err != nil && !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("MountBlob of a blob the source lacks: %v, want false with no error or ErrNotFound", err)
	}
	if present, _ := d.HasBlob(ctx, missingBlob()); present {
		t.Fatal("a failed mount made a blob visible")
	}
	if err := d.PutManifest(ctx, img.Manifest.Descriptor, img.Manifest.Data, k.writeRef(img, "v1")); err != nil {
		t.Fatalf("PutManifest: %v", err)
	}
	finish(t, ep)
	_, src := k.source(t, loc)
	k.check(t, src, img, k.readRef(img, "v1"))
}

func (k *kit) testReferrers(t *testing.T) {
	if k.h.SingleImage {
		t.Skip("a single-image format cannot hold an image and its referrers")
	}
	if k.h.ConvertsManifests {
		// A referrer names its subject by digest, which a converting
		// format changes; what it should then list is not settled.
		t.Skip("not checked for formats that convert manifests (ConvertsManifests)")
	}
	ctx := context.Background()
	loc := k.h.NewLocation(t)
	img := RandomImage(120, 1, 1000)
	k.store(t, loc, img, "v1")
	ep, _ := k.source(t, loc)
	if !has(ep, pluginapi.CapReferrers) {
		t.Skipf("source does not advertise %q", pluginapi.CapReferrers)
	}
	const sigType = "application/vnd.stevedore.transporttest.signature"
	ref := RandomReferrer(121, img.Manifest.Descriptor, sigType)
	if k.h.ReadOnly {
		k.h.Seed(t, loc, "", ref)
	} else {
		wep, d := k.dest(t, loc)
		putArtifact(t, d, ref, "") // by digest only, as a copy engine pushes referrers
		finish(t, wep)
	}
	rep, src := k.source(t, loc)
	rl := as[pluginapi.ReferrerLister](t, rep, pluginapi.CapReferrers)
	for _, filter := range []string{"", sigType} {
		got, err := rl.Referrers(ctx, img.Manifest.Descriptor.Digest, filter)
		if err != nil {
			t.Fatalf("Referrers(%q): %v", filter, err)
		}
		if len(got) != 1 || got[0].Digest != ref.Manifest.Descriptor.Digest || got[0].Size != ref.Manifest.Descriptor.Size || got[0].ArtifactType != sigType || got[0].MediaType != ocispec.MediaTypeImageManifest {
			t.Fatalf("Referrers(%q) = %+v, want the one %s referrer %s", filter, got, sigType, ref.Manifest.Descriptor.Digest)
		}
	}
	got, err := rl.Referrers(ctx, img.Manifest.Descriptor.Digest, "application/vnd.stevedore.transporttest.other")
	if err != nil || len(got) != 0 {
		t.Fatalf("Referrers with another artifact type = %+v, %v; want none", got, err)
	}
	got, err = rl.Referrers(ctx, digest.FromString("transporttest: no subject"), "")
	if err != nil && !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("Referrers of an unknown subject: %v", err)
	}
	if len(got) != 0 {
		t.Fatalf("Referrers of an unknown subject = %+v, want none", got)
	}
	checkArtifact(t, src, ref, ref.Manifest.Descriptor.Digest.String())
}

func (k *kit) testCloseWithoutCommit(t *testing.T) {
	if k.h.ReadOnly {
		t.Skip("read-only transport")
	}
	ctx := context.Background()
	loc := k.h.NewLocation(t)
	ep, d := k.dest(t, loc)
	if !has(ep, pluginapi.CapCommit) {
		t.Skipf("destination does not advertise %q", pluginapi.CapCommit)
	}
	img := RandomImage(130, 1, 1000)
	putArtifact(t, d, img, k.writeRef(img, "v1"))
	if err := ep.Close(ctx); err != nil {
		t.Fatalf("Close without Commit: %v", err)
	}
	rep, err := k.openErr(t, loc, pluginapi.ModeRead)
	if err != nil {
		return // nothing there at all: fine
	}
	if _, err := as[pluginapi.Source](t, rep, pluginapi.CapSource).Resolve(ctx, k.readRef(img, "v1")); err == nil {
		t.Fatal("an image written without Commit is visible after Close")
	}
}
