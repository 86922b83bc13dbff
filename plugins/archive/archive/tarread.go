package archive

import (
	"archive/tar"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/layer"
)

// tarFile is an archive opened for reading, indexed for in-place reads.
type tarFile struct {
	path string
	f    *os.File
	ix   *layer.Index
	// compression is that of the file at path (f is then a decompressed
	// copy): a writer adding to the archive compresses it the same way.
	compression layer.Compression
}

func openTar(ctx context.Context, path string) (_ *tarFile, err error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("archive %s: %w", path, core.ErrNotFound)
		}
		return nil, fmt.Errorf("archive %s: %w", path, err)
	}
	t := &tarFile{path: path, f: f}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("archive %s: not a regular file: %w", path, core.ErrInvalid)
	}
	head := make([]byte, layer.MagicLen)
	n, _ := io.ReadFull(f, head)
	size := fi.Size()
	if c := layer.Detect(head[:n]); c != layer.Uncompressed {
		if size, err = t.decompress(ctx, c); err != nil {
			return nil, err
		}
		t.compression = c
	}
	t.ix, err = layer.IndexTar(ctx, t.f, size, layer.Options{})
	if errors.Is(err, layer.ErrSparse) {
		// GNU tar --sparse stores a file without its holes: read in place,
		// its bytes are wrong. skopeo and docker extract such archives;
		// we index a copy with every sparse file written out whole.
		if size, err = t.expand(ctx, size); err != nil {
			return nil, err
		}
		t.ix, err = layer.IndexTar(ctx, t.f, size, layer.Options{})
	}
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", path, err)
	}
	return t, nil
}

// expand replaces t.f by a temporary copy of its tar in which sparse
// entries are plain files.
func (t *tarFile) expand(ctx context.Context, size int64) (int64, error) {
	out, err := os.CreateTemp("", "stevedore-archive-*.tar")
	if err != nil {
		return 0, fmt.Errorf("archive %s: %w", t.path, err)
	}
	if err := os.Remove(out.Name()); err != nil { // no name, as in decompress
		out.Close()
		return 0, fmt.Errorf("archive %s: %w", t.path, err)
	}
	fail := func(err error) (int64, error) {
		out.Close()
		return 0, fmt.Errorf("archive %s: expanding sparse files: %w", t.path, err)
	}
	r := layer.NewReader(io.NewSectionReader(t.f, 0, size), layer.Options{})
	tw := tar.NewWriter(out)
	for {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		hdr, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err)
		}
		nh := &tar.Header{Name: hdr.Name, Linkname: hdr.Linkname, Typeflag: hdr.Typeflag, Mode: hdr.Mode, ModTime: hdr.ModTime}
		switch {
		case layer.IsSparse(hdr), hdr.Typeflag == tar.TypeRegA:
			nh.Typeflag = tar.TypeReg
		}
		if nh.Typeflag == tar.TypeReg {
			nh.Size = hdr.Size
		}
		if err := tw.WriteHeader(nh); err != nil {
			return fail(fmt.Errorf("tar entry %q: %w", hdr.Name, err))
		}
		if nh.Size > 0 {
			if _, err := io.Copy(tw, ctxReader{ctx, r}); err != nil {
				return fail(fmt.Errorf("tar entry %q: %w", hdr.Name, err))
			}
		}
	}
	if err := tw.Close(); err != nil {
		return fail(err)
	}
	n, err := out.Seek(0, io.SeekCurrent)
	if err != nil {
		return fail(err)
	}
	t.f.Close()
	t.f = out
	return n, nil
}

// decompress replaces t.f by a decompressed temporary copy.
func (t *tarFile) decompress(ctx context.Context, c layer.Compression) (int64, error) {
	if _, err := t.f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("archive %s: %w", t.path, err)
	}
	var dr io.ReadCloser
	switch c {
	case layer.Bzip2:
		// docker load takes bzip2 archives (docker save | bzip2), and
		// skopeo reads them; layers never are, so core/layer refuses it.
		dr = io.NopCloser(bzip2.NewReader(t.f))
	default:
		var err error
		if dr, err = layer.NewDecompressor(t.f, c); err != nil {
			if errors.Is(err, core.ErrUnsupported) {
				return 0, fmt.Errorf("archive %s: %s-compressed archive (gzip, bzip2 and zstd are read; decompress it first): %w", t.path, c, core.ErrUnsupported)
			}
			return 0, fmt.Errorf("archive %s: %w", t.path, err)
		}
	}
	defer dr.Close()
	// The copy has no name once created: it goes with the last descriptor,
	// however the process ends (a SIGKILL left whole archives in $TMPDIR).
	out, err := os.CreateTemp("", "stevedore-archive-*.tar")
	if err != nil {
		return 0, fmt.Errorf("archive %s: %w", t.path, err)
	}
	if err := os.Remove(out.Name()); err != nil {
		out.Close()
		return 0, fmt.Errorf("archive %s: %w", t.path, err)
	}
	n, err := io.Copy(out, ctxReader{ctx, dr})
	if err != nil {
		out.Close()
		return 0, fmt.Errorf("archive %s: decompress %s: %w", t.path, c, err)
	}
	t.f.Close()
	t.f = out
	return n, nil
}

func (t *tarFile) close() error {
	var err error
	if t.f != nil {
		err = t.f.Close()
	}
	return err
}

func (t *tarFile) readFile(name string, max int64) ([]byte, error) {
	b, err := t.ix.ReadFile(name, max)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", t.path, err)
	}
	return b, nil
}

// open returns the content of name from offset on.
func (t *tarFile) open(name string, offset int64) (io.ReadCloser, int64, error) {
	e, err := t.ix.Lookup(name)
	if err != nil {
		return nil, 0, fmt.Errorf("archive %s: %w", t.path, err)
	}
	if offset < 0 || offset > e.Size {
		return nil, 0, fmt.Errorf("archive %s: %s: offset %d outside 0..%d: %w", t.path, name, offset, e.Size, core.ErrInvalid)
	}
	return io.NopCloser(io.NewSectionReader(t.f, e.Offset+offset, e.Size-offset)), e.Size, nil
}

func (t *tarFile) has(name string) bool {
	_, err := t.ix.Lookup(name)
	return err == nil
}

// blobName is the layout path of a blob.
func blobName(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("digest %q: %v: %w", d, err, core.ErrInvalid)
	}
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded(), nil
}

// ctxReader stops a copy promptly once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
