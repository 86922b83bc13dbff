package dirtransport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/content"
)

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

// writeVerified writes r to dir/name through a temporary file that is
// verified against desc, fsynced and renamed; on error nothing is left.
func writeVerified(ctx context.Context, dir, name string, desc ocispec.Descriptor, r io.Reader) (err error) {
	f, err := os.CreateTemp(dir, ".tmp-"+name+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	vr := content.NewVerifyReader(ctxReader{ctx, r}, desc)
	if _, err = io.Copy(f, vr); err != nil {
		return err
	}
	if !vr.Verified() {
		return fmt.Errorf("stream ended unverified: %w", core.ErrInvalid)
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// writeFileAtomic writes small content (version, manifests) the same way.
func writeFileAtomic(dir, name string, b []byte) error {
	return writeVerified(context.Background(), dir, name, ocispec.Descriptor{Digest: digestOf(b), Size: int64(len(b))}, bytes.NewReader(b))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

func digestOf(b []byte) digest.Digest { return digest.FromBytes(b) }
