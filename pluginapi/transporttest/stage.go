package transporttest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// stageAndWrite stages desc on st and writes data into the staged file from
// this process, as the host does: the file must already exist, be empty and
// private to its owner.
func stageAndWrite(t *testing.T, st pluginapi.BlobStager, desc ocispec.Descriptor, data []byte) string {
	t.Helper()
	p, err := st.StageBlob(context.Background(), desc)
	if err != nil {
		t.Fatalf("StageBlob %s: %v", desc.Digest, err)
	}
	if !filepath.IsAbs(p) {
		t.Fatalf("StageBlob %s = %q, not an absolute path", desc.Digest, p)
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("StageBlob %s = %s: open: %v", desc.Digest, p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != 0 || fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("StageBlob %s = %s: mode %v, %d bytes; want an empty regular file only its owner can use (0600)", desc.Digest, p, fi.Mode(), fi.Size())
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	return p
}

func wantGone(t *testing.T, what, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after %s: staged file %s still exists (%v)", what, p, err)
	}
}

// testStageBlob: a destination advertising "stage-blob" lets the host write
// a blob into a file it staged. Nothing staged is visible before a commit
// that checks the size (and the digest unless host-verified); refused,
// aborted and abandoned files are removed; paths it did not stage are
// refused and left alone.
func (k *kit) testStageBlob(t *testing.T) {
	if k.h.ReadOnly {
		t.Skip("read-only transport")
	}
	ctx := context.Background()
	hv := pluginapi.WithHostVerified(ctx)
	loc := k.h.NewLocation(t)
	ep, d := k.dest(t, loc)
	if !has(ep, pluginapi.CapStageBlob) {
		t.Skipf("destination does not advertise %q", pluginapi.CapStageBlob)
	}
	st := as[pluginapi.BlobStager](t, ep, pluginapi.CapStageBlob)
	notVisible := func(what string, desc ocispec.Descriptor) {
		t.Helper()
		if ok, err := d.HasBlob(ctx, desc); ok || err != nil {
			t.Fatalf("after %s: HasBlob = %v, %v; want false, nil", what, ok, err)
		}
	}

	good := NewBlob("application/octet-stream", bytes.Repeat([]byte("good"), 5000))
	bad := bytes.Repeat([]byte("bad!"), 5000) // same size, other digest
	for _, c := range []struct {
		name     string
		data     []byte
		ctx      context.Context
		wantErr  error
		verified bool
	}{
		{"a short file", good.Data[:len(good.Data)-1], hv, core.ErrSizeMismatch, true},
		{"a long file", append(slices.Clone(good.Data), 'x'), hv, core.ErrSizeMismatch, true},
		{"an empty file", nil, hv, core.ErrSizeMismatch, true},
		{"wrong content, not host-verified", bad, ctx, core.ErrDigestMismatch, false},
	} {
		p := stageAndWrite(t, st, good.Descriptor, c.data)
		wantErr(t, "CommitStagedBlob of "+c.name, st.CommitStagedBlob(c.ctx, good.Descriptor, p), c.wantErr)
		notVisible("CommitStagedBlob of "+c.name, good.Descriptor)
		wantGone(t, "a refused CommitStagedBlob of "+c.name, p)
	}

	// Abort removes the file, and the path cannot be committed afterwards.
	p := stageAndWrite(t, st, good.Descriptor, good.Data)
	if err := st.AbortStagedBlob(ctx, p); err != nil {
		t.Fatalf("AbortStagedBlob: %v", err)
	}
	wantGone(t, "AbortStagedBlob", p)
	wantErr(t, "CommitStagedBlob after AbortStagedBlob", st.CommitStagedBlob(hv, good.Descriptor, p), core.ErrInvalid)
	notVisible("AbortStagedBlob", good.Descriptor)

	// A file staged for one blob cannot be committed as another.
	other := NewBlob("application/octet-stream", bytes.Repeat([]byte("othr"), 5000))
	p = stageAndWrite(t, st, good.Descriptor, other.Data)
	wantErr(t, "CommitStagedBlob under another descriptor than staged", st.CommitStagedBlob(ctx, other.Descriptor, p), core.ErrInvalid)
	notVisible("CommitStagedBlob under another descriptor", other.Descriptor)
	notVisible("CommitStagedBlob under another descriptor", good.Descriptor)
	wantGone(t, "a refused CommitStagedBlob under another descriptor", p)

	// Paths this endpoint did not stage are refused and left alone: a file
	// elsewhere, and a file staged by another endpoint on the location.
	foreign := filepath.Join(t.TempDir(), "foreign")
	if err := os.WriteFile(foreign, good.Data, 0o600); err != nil {
		t.Fatal(err)
	}
	d2, _ := k.dest(t, loc)
	st2 := as[pluginapi.BlobStager](t, d2, pluginapi.CapStageBlob)
	sibling := stageAndWrite(t, st2, good.Descriptor, good.Data)
	for _, fp := range []string{foreign, sibling, ""} {
		wantErr(t, "CommitStagedBlob of a path this endpoint did not stage ("+fp+")", st.CommitStagedBlob(hv, good.Descriptor, fp), core.ErrInvalid)
		wantErr(t, "AbortStagedBlob of a path this endpoint did not stage ("+fp+")", st.AbortStagedBlob(ctx, fp), core.ErrInvalid)
	}
	notVisible("CommitStagedBlob of paths not staged by the endpoint", good.Descriptor)
	for _, fp := range []string{foreign, sibling} {
		if b, err := os.ReadFile(fp); err != nil || !bytes.Equal(b, good.Data) {
			t.Fatalf("a refused path %s was changed or removed (%v)", fp, err)
		}
	}

	// Close without commit removes what the endpoint staged.
	if err := d2.Close(ctx); err != nil {
		t.Fatalf("Close with a staged file: %v", err)
	}
	wantGone(t, "Close without CommitStagedBlob", sibling)
	notVisible("Close without CommitStagedBlob", good.Descriptor)

	// Stage, write, commit: the config with the digest checked by the
	// destination, the layers host-verified. Staged files are visible only
	// once committed, and a path commits once.
	img := RandomImage(140, 2, k.h.LayerSize)
	for i, b := range img.Blobs() {
		c := hv
		if i == 0 {
			c = ctx
		}
		p := stageAndWrite(t, st, b.Descriptor, b.Data)
		notVisible("writing a staged file", b.Descriptor)
		if err := st.CommitStagedBlob(c, b.Descriptor, p); err != nil {
			t.Fatalf("CommitStagedBlob %s (host-verified %v): %v", b.Descriptor.Digest, pluginapi.HostVerified(c), err)
		}
		if ok, err := d.HasBlob(ctx, b.Descriptor); !ok || err != nil {
			t.Fatalf("HasBlob after CommitStagedBlob = %v, %v; want true, nil", ok, err)
		}
		wantErr(t, "a second CommitStagedBlob of one path", st.CommitStagedBlob(hv, b.Descriptor, p), core.ErrInvalid)
	}
	if err := d.PutManifest(ctx, img.Manifest.Descriptor, img.Manifest.Data, k.writeRef(img, "v1")); err != nil {
		t.Fatalf("PutManifest: %v", err)
	}
	finish(t, ep)
	_, src := k.source(t, loc)
	k.check(t, src, img, k.readRef(img, "v1"))
}
