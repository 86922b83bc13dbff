package content

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
)

func desc(b []byte) ocispec.Descriptor {
	return ocispec.Descriptor{Digest: digest.FromBytes(b), Size: int64(len(b))}
}

func TestVerifyReader(t *testing.T) {
	good := bytes.Repeat([]byte("stevedore"), 100000)
	bad := append([]byte(nil), good...)
	bad[len(bad)-1] ^= 1
	tests := []struct {
		name string
		data []byte
		desc ocispec.Descriptor
		is   error
	}{
		{"match", good, desc(good), nil},
		{"empty", nil, desc(nil), nil},
		{"flipped last byte", bad, desc(good), core.ErrDigestMismatch},
		{"short", good[:10], desc(good), core.ErrSizeMismatch},
		{"long", append(append([]byte(nil), good...), 'x'), desc(good), core.ErrSizeMismatch},
		{"sha512", good, ocispec.Descriptor{Digest: digest.SHA512.FromBytes(good), Size: int64(len(good))}, nil},
		{"bad descriptor", good, ocispec.Descriptor{Digest: "sha256:nope", Size: 1}, core.ErrInvalid},
		{"negative size", good, ocispec.Descriptor{Digest: digest.FromBytes(good), Size: -1}, core.ErrInvalid},
	}
	for _, tt := range tests {
		for _, small := range []bool{false, true} {
			t.Run(tt.name, func(t *testing.T) {
				var r io.Reader = bytes.NewReader(tt.data)
				if small {
					r = iotest.OneByteReader(r)
				}
				vr := NewVerifyReader(r, tt.desc)
				got, err := io.ReadAll(vr)
				if tt.is == nil {
					if err != nil || !bytes.Equal(got, tt.data) || !vr.Verified() {
						t.Fatalf("err=%v verified=%v equal=%v", err, vr.Verified(), bytes.Equal(got, tt.data))
					}
					return
				}
				if !errors.Is(err, tt.is) {
					t.Fatalf("err = %v, want %v", err, tt.is)
				}
				if int64(len(got)) >= tt.desc.Size && tt.desc.Size > 0 && errors.Is(err, core.ErrDigestMismatch) {
					t.Fatalf("consumer received all %d bytes of wrong content", len(got))
				}
			})
		}
	}
}

// A consumer that reads exactly Size bytes must not get the whole of wrong
// content: the last byte is withheld with the error.
func TestVerifyReaderWithholdsLastByte(t *testing.T) {
	good := []byte(strings.Repeat("a", 4096))
	bad := []byte(strings.Repeat("a", 4095) + "b")
	buf := make([]byte, len(good))
	_, err := io.ReadFull(NewVerifyReader(bytes.NewReader(bad), desc(good)), buf)
	var dm *core.DigestMismatchError
	if !errors.As(err, &dm) || dm.Expected != digest.FromBytes(good) || dm.Actual != digest.FromBytes(bad) {
		t.Fatalf("ReadFull err = %v", err)
	}
}

func TestReadAllVerifiedLimit(t *testing.T) {
	b := []byte("{}")
	if _, err := ReadAllVerified(bytes.NewReader(b), ocispec.Descriptor{Digest: digest.FromBytes(b), Size: 10 << 20}, MaxManifestSize); !errors.Is(err, core.ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if got, err := ReadAllVerified(bytes.NewReader(b), desc(b), MaxManifestSize); err != nil || string(got) != "{}" {
		t.Fatalf("got %q, %v", got, err)
	}
	if err := VerifyBytes([]byte("x"), desc(b)); !errors.Is(err, core.ErrSizeMismatch) {
		t.Fatalf("err = %v", err)
	}
}

func TestSizeReader(t *testing.T) {
	good := bytes.Repeat([]byte("x"), 1000)
	d := desc(good)
	if got, err := io.ReadAll(NewSizeReader(bytes.NewReader(good), d)); err != nil || len(got) != 1000 {
		t.Fatalf("match: %d bytes, %v", len(got), err)
	}
	// Other bytes of the right size pass: the digest is the caller's job.
	other := bytes.Repeat([]byte("y"), 1000)
	sr := NewSizeReader(bytes.NewReader(other), d)
	if _, err := io.ReadAll(sr); err != nil || !sr.Verified() {
		t.Fatalf("size-only: %v", err)
	}
	for _, b := range [][]byte{good[:999], append(append([]byte(nil), good...), 'z')} {
		if _, err := io.ReadAll(NewSizeReader(bytes.NewReader(b), d)); !errors.Is(err, core.ErrSizeMismatch) {
			t.Fatalf("%d bytes: err = %v", len(b), err)
		}
	}
}
