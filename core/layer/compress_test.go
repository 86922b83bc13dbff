package layer

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/stevedore-oci/stevedore/core"
)

func gz(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := NewGzipWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zst(t testing.TB, b []byte) []byte {
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.EncodeAll(b, nil)
}

func TestDecompress(t *testing.T) {
	plain := []byte(strings.Repeat("layer content ", 1000))
	tests := []struct {
		name string
		in   []byte
		want Compression
	}{
		{"plain", plain, Uncompressed},
		{"gzip", gz(t, plain), Gzip},
		{"zstd", zst(t, plain), Zstd},
		{"short", []byte("ab"), Uncompressed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, c, err := Decompress(bytes.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if c != tt.want {
				t.Fatalf("compression %s, want %s", c, tt.want)
			}
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			want := plain
			if tt.name == "short" {
				want = tt.in
			}
			if !bytes.Equal(got, want) {
				t.Fatal("content differs")
			}
		})
	}
}

func TestDecompressRefuses(t *testing.T) {
	if _, _, err := Decompress(bytes.NewReader([]byte("BZh91AY&SY"))); !errors.Is(err, core.ErrUnsupported) {
		t.Fatalf("bzip2: %v", err)
	}
	bad := gz(t, []byte(strings.Repeat("x", 100)))
	bad[len(bad)-5] ^= 0xff // corrupt the CRC/size trailer
	rc, _, err := Decompress(bytes.NewReader(bad))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("corrupt gzip: %v", err)
	}
}
