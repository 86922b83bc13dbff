package transporttest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// signature makes the n-th test signature of seed: a simple-signing-looking
// blob (0xa3 starts an OpenPGP compressed packet, which skopeo accepts) of
// size bytes.
func signature(seed uint64, n, size int) []byte {
	b := make([]byte, size)
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	b[0] = 0xa3
	copy(b[1:], fmt.Sprintf("transporttest signature %d", n))
	return b
}

func signatures(seed uint64, count, size int) [][]byte {
	sigs := make([][]byte, count)
	for i := range sigs {
		sigs[i] = signature(seed, i+1, size)
	}
	return sigs
}

// testSignatures: a destination advertising "put-signatures" stores the
// signatures of manifests it was given, in order and byte for byte,
// replacing earlier ones, and a source of the location advertising
// "signatures" lists them back; a manifest without signatures has none (an
// empty list, no error); sets over the limits are refused and store nothing.
// Signatures are written as the host writes them: a manifest's after the
// manifest, the top-level one's before its tag.
func (k *kit) testSignatures(t *testing.T) {
	if k.h.ReadOnly {
		t.Skip("read-only transport")
	}
	if k.h.ConvertsManifests {
		t.Skip("the format converts manifests: signatures of the written digests cannot hold")
	}
	ctx := context.Background()
	loc := k.h.NewLocation(t)
	ep, d := k.dest(t, loc)
	if !has(ep, pluginapi.CapPutSignatures) {
		t.Skipf("destination does not advertise %q", pluginapi.CapPutSignatures)
	}
	sw := as[pluginapi.SignatureWriter](t, ep, pluginapi.CapPutSignatures)

	var a Artifact = RandomIndex(150, 1, 4<<10)
	if k.h.NoIndex {
		a = RandomImage(150, 1, 4<<10)
	}
	top := a.Top().Descriptor
	children := a.ChildManifests()
	// More than nine, so that an order by file name (10 before 2) shows.
	topSigs := signatures(1, 11, 700)
	var childSigs [][]byte
	if len(children) > 0 {
		// The largest allowed next to a small one.
		childSigs = [][]byte{signature(2, 1, pluginapi.MaxSignatureSize), signature(2, 2, 40)}
	}

	putArtifact(t, d, a) // blobs and child manifests
	if err := d.PutManifest(ctx, top, a.Top().Data, ""); err != nil {
		t.Fatalf("PutManifest %s by digest: %v", top.Digest, err)
	}
	// unsigned receives only refused sets.
	unsigned := top.Digest
	if len(children) > 1 {
		unsigned = children[1].Descriptor.Digest
	}
	for _, c := range []struct {
		name string
		sigs [][]byte
		want error
	}{
		{fmt.Sprintf("%d signatures", pluginapi.MaxSignatures+1), signatures(3, pluginapi.MaxSignatures+1, 10), core.ErrTooLarge},
		{fmt.Sprintf("a signature of %d bytes", pluginapi.MaxSignatureSize+1), [][]byte{signature(4, 1, 10), signature(4, 2, pluginapi.MaxSignatureSize+1)}, core.ErrTooLarge},
		{"an empty signature", [][]byte{signature(5, 1, 10), {}}, core.ErrInvalid},
	} {
		wantErr(t, "PutSignatures of "+c.name, sw.PutSignatures(ctx, unsigned, c.sigs), c.want)
	}
	if len(children) > 0 {
		if err := sw.PutSignatures(ctx, children[0].Descriptor.Digest, childSigs); err != nil {
			t.Fatalf("PutSignatures of child %s: %v", children[0].Descriptor.Digest, err)
		}
	}
	// A second set replaces the first, also when it is shorter.
	if err := sw.PutSignatures(ctx, top.Digest, signatures(6, 13, 50)); err != nil {
		t.Fatalf("PutSignatures of %s: %v", top.Digest, err)
	}
	if err := sw.PutSignatures(ctx, top.Digest, topSigs); err != nil {
		t.Fatalf("PutSignatures of %s (replacing): %v", top.Digest, err)
	}
	if err := d.PutManifest(ctx, top, a.Top().Data, k.writeRef(a, "signed")); err != nil {
		t.Fatalf("PutManifest %s: %v", top.Digest, err)
	}
	finish(t, ep)

	sep, src := k.source(t, loc)
	if _, err := src.Resolve(ctx, k.readRef(a, "signed")); err != nil {
		t.Fatalf("Resolve(%q) after writing signatures: %v", k.readRef(a, "signed"), err)
	}
	if !has(sep, pluginapi.CapSignatures) {
		t.Fatalf("destinations store signatures (%q) but a source of the location does not list them (%q); has %v",
			pluginapi.CapPutSignatures, pluginapi.CapSignatures, capsOf(sep))
	}
	sl := as[pluginapi.SignatureLister](t, sep, pluginapi.CapSignatures)
	check := func(what string, m digest.Digest, want [][]byte) {
		t.Helper()
		got, err := sl.Signatures(ctx, m)
		if err != nil {
			t.Fatalf("Signatures of %s %s: %v", what, m, err)
		}
		if !slices.EqualFunc(got, want, bytes.Equal) {
			t.Fatalf("Signatures of %s %s: %d signatures %s, want the %d written, in order %s", what, m, len(got), sizes(got), len(want), sizes(want))
		}
	}
	check("the top-level manifest", top.Digest, topSigs)
	if len(children) > 0 {
		check("a child manifest", children[0].Descriptor.Digest, childSigs)
	}
	if unsigned != top.Digest {
		check("a manifest given only refused sets", unsigned, nil)
	}
	check("a manifest not held", missingBlob().Digest, nil)
}

// sizes describes signatures for messages: their sizes and first digest.
func sizes(sigs [][]byte) string {
	var out []string
	for _, s := range sigs {
		out = append(out, fmt.Sprintf("%d:%.12s", len(s), digest.FromBytes(s).Encoded()))
	}
	return fmt.Sprint(out)
}
