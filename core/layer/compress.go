package layer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/stevedore-oci/stevedore/core"
)

// Compression is the compression of a stream, told by its magic bytes.
type Compression int

const (
	// Uncompressed is anything without a known magic.
	Uncompressed Compression = iota
	Gzip
	Zstd
	Bzip2
	Xz
)

func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	case Bzip2:
		return "bzip2"
	case Xz:
		return "xz"
	}
	return "uncompressed"
}

var magics = []struct {
	c     Compression
	magic []byte
}{
	{Gzip, []byte{0x1f, 0x8b}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{Bzip2, []byte("BZh")},
	{Xz, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
}

// MagicLen is how many leading bytes Detect needs to tell every format.
const MagicLen = 6

// Detect tells the compression of a stream from its first bytes (at least
// MagicLen of them unless the stream is shorter).
func Detect(head []byte) Compression {
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			return m.c
		}
	}
	return Uncompressed
}

// DetectReader peeks at r and returns a reader that still yields every byte
// of r, along with the compression detected.
func DetectReader(r io.Reader) (io.Reader, Compression, error) {
	br := bufio.NewReaderSize(r, 32<<10)
	head, err := br.Peek(MagicLen)
	if err != nil && err != io.EOF {
		return nil, Uncompressed, err
	}
	return br, Detect(head), nil
}

// Decompress returns the uncompressed content of r, which may be gzip, zstd
// or uncompressed, and the compression found. bzip2 and xz are refused with
// an error wrapping core.ErrUnsupported. Closing the result releases the
// decoder; it does not close r.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br, c, err := DetectReader(r)
	if err != nil {
		return nil, c, fmt.Errorf("detect compression: %w", err)
	}
	rc, err := NewDecompressor(br, c)
	return rc, c, err
}

// NewDecompressor decodes r, known to be compressed with c.
func NewDecompressor(r io.Reader, c Compression) (io.ReadCloser, error) {
	switch c {
	case Uncompressed:
		return io.NopCloser(r), nil
	case Gzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip: %v: %w", err, core.ErrInvalid)
		}
		return gzipReader{zr}, nil
	case Zstd:
		// Concurrency 1 decodes synchronously: no goroutine outlives Close.
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<30))
		if err != nil {
			return nil, fmt.Errorf("zstd: %v: %w", err, core.ErrInvalid)
		}
		return zstdReader{zr}, nil
	}
	return nil, fmt.Errorf("%s compressed layers: %w", c, core.ErrUnsupported)
}

type gzipReader struct{ *gzip.Reader }

func (g gzipReader) Read(p []byte) (int, error) {
	n, err := g.Reader.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("gzip: %v: %w", err, core.ErrInvalid)
	}
	return n, err
}

type zstdReader struct{ d *zstd.Decoder }

func (z zstdReader) Read(p []byte) (int, error) {
	n, err := z.d.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("zstd: %v: %w", err, core.ErrInvalid)
	}
	return n, err
}

func (z zstdReader) Close() error { z.d.Close(); return nil }

// NewGzipWriter compresses to w at the default level.
func NewGzipWriter(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) }
