package pluginapi

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/stevedore-oci/stevedore/core"
	transportv1 "github.com/stevedore-oci/stevedore/pluginapi/proto/v1"
)

func TestCheckSignatures(t *testing.T) {
	many := make([][]byte, MaxSignatures+1)
	for i := range many {
		many[i] = []byte{byte(i) + 1}
	}
	for _, c := range []struct {
		name string
		sigs [][]byte
		want error
	}{
		{"none", nil, nil},
		{"at the limits", append(slices.Clone(many[:MaxSignatures-1]), make([]byte, MaxSignatureSize)), nil},
		{"too many", many, core.ErrTooLarge},
		{"too big", [][]byte{[]byte("a"), make([]byte, MaxSignatureSize+1)}, core.ErrTooLarge},
		{"empty", [][]byte{[]byte("a"), {}}, core.ErrInvalid},
	} {
		err := CheckSignatures(c.sigs)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: CheckSignatures = %v, want %v", c.name, err, c.want)
		}
	}
}

// Signatures travel both ways in order and byte for byte, also a full-size
// set far over the gRPC message limit; sets over the limits are refused by
// the client and, when a client does not check, by the server.
func TestSignaturesOverGRPC(t *testing.T) {
	rp := startPlugin(t, nil)
	ctx := testCtx(t)
	opts := map[string]string{"signatures": "true"}
	w := open(t, rp, "sigs", ModeWrite, opts)
	r := open(t, rp, "sigs", ModeRead, opts)
	if !w.Has(CapSignatures) || !w.Has(CapPutSignatures) || !r.Has(CapSignatures) || r.Has(CapPutSignatures) {
		t.Fatalf("capabilities: write %v, read %v", w.Capabilities(), r.Capabilities())
	}
	m := digest.FromString("a manifest")
	var sigs [][]byte
	for i := range 5 {
		big, _ := randomBlob(MaxSignatureSize, uint64(100+i))
		sigs = append(sigs, big)
	}
	for i := range MaxSignatures - len(sigs) {
		sigs = append(sigs, fmt.Appendf(nil, "\xa3signature %d", i))
	}
	if err := w.PutSignatures(ctx, m, sigs); err != nil {
		t.Fatalf("PutSignatures (%d, five of %d bytes): %v", len(sigs), MaxSignatureSize, err)
	}
	got, err := r.Signatures(ctx, m)
	if err != nil {
		t.Fatalf("Signatures: %v", err)
	}
	if !slices.EqualFunc(got, sigs, bytes.Equal) {
		t.Fatalf("Signatures: %d signatures back, want the %d written in order", len(got), len(sigs))
	}
	if got, err := r.Signatures(ctx, digest.FromString("unsigned")); err != nil || len(got) != 0 {
		t.Fatalf("Signatures of an unsigned manifest = %d, %v; want none, nil", len(got), err)
	}

	// Refused by the client, before the plugin sees them.
	for name, c := range map[string]struct {
		sigs [][]byte
		want error
	}{
		"too many": {append(slices.Clone(sigs), []byte("one more")), core.ErrTooLarge},
		"too big":  {[][]byte{make([]byte, MaxSignatureSize+1)}, core.ErrTooLarge},
		"empty":    {[][]byte{[]byte("x"), nil}, core.ErrInvalid},
	} {
		if err := w.PutSignatures(ctx, m, c.sigs); !errors.Is(err, c.want) {
			t.Errorf("PutSignatures %s: %v, want %v", name, err, c.want)
		}
	}
	// Refused by the server, from a client that does not check.
	put := func(d string, sigs [][]byte) error {
		stream, err := rp.client.PutSignatures(ctx)
		if err != nil {
			return fromStatus(err)
		}
		msgs := []*transportv1.PutSignaturesRequest{{Handle: w.handle, ManifestDigest: d}}
		for _, s := range sigs {
			msgs = append(msgs, &transportv1.PutSignaturesRequest{Signature: s})
		}
		for _, msg := range msgs {
			if err := stream.Send(msg); err == io.EOF {
				break
			} else if err != nil {
				return fromStatus(err)
			}
		}
		_, err = stream.CloseAndRecv()
		return fromStatus(err)
	}
	for name, c := range map[string]struct {
		digest string
		sigs   [][]byte
		want   error
	}{
		"too many":   {m.String(), append(slices.Clone(sigs), []byte("one more")), core.ErrTooLarge},
		"too big":    {m.String(), [][]byte{[]byte("a"), make([]byte, MaxSignatureSize+1)}, core.ErrTooLarge},
		"empty":      {m.String(), [][]byte{nil}, core.ErrInvalid},
		"bad digest": {"sha256:nope", [][]byte{[]byte("a")}, core.ErrInvalid},
	} {
		if err := put(c.digest, c.sigs); !errors.Is(err, c.want) {
			t.Errorf("raw PutSignatures %s: %v, want %v", name, err, c.want)
		}
	}
	if got, err := r.Signatures(ctx, m); err != nil || !slices.EqualFunc(got, sigs, bytes.Equal) {
		t.Fatalf("after refused writes: %d signatures, %v; want the %d first written", len(got), err, len(sigs))
	}
	if _, err := r.Signatures(ctx, digest.Digest("sha256:nope")); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("Signatures of a malformed digest: %v, want ErrInvalid", err)
	}

	// Without the capability the calls fail locally.
	plain := open(t, rp, "plain", ModeWrite, nil)
	if plain.Has(CapSignatures) || plain.Has(CapPutSignatures) {
		t.Fatalf("plain endpoint advertises %v", plain.Capabilities())
	}
	if _, err := plain.Signatures(ctx, m); !errors.Is(err, core.ErrUnsupported) {
		t.Fatalf("Signatures without the capability: %v", err)
	}
	if err := plain.PutSignatures(ctx, m, sigs[:1]); !errors.Is(err, core.ErrUnsupported) {
		t.Fatalf("PutSignatures without the capability: %v", err)
	}
}
