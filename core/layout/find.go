package layout

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
)

// Find lists the layouts at or under root (directories holding an
// oci-layout file), as root followed by their path under it ("mirror",
// "mirror/team/api"), root itself without a trailing slash, in lexical
// order. A layout's blobs directory and directories whose name starts with
// a dot are not searched; symbolic links are not followed. What a mirror
// of many repositories into layouts writes is read back this way.
func Find(ctx context.Context, root string) ([]string, error) {
	if root == "" {
		return nil, fmt.Errorf("oci layouts: empty directory name: %w", core.ErrInvalid)
	}
	base := strings.TrimRight(root, "/")
	if err := checkDir("oci layouts under "+root, root); err != nil {
		return nil, err
	}
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if path != root && strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir
		}
		if path != root && d.Name() == ocispec.ImageBlobsDir && isLayout(filepath.Dir(path)) {
			return fs.SkipDir
		}
		if !isLayout(path) {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		switch {
		case rel != ".":
			out = append(out, base+"/"+filepath.ToSlash(rel))
		case base == "":
			out = append(out, "/")
		default:
			out = append(out, base)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("oci layouts under %s: %w", root, err)
	}
	slices.Sort(out)
	return out, nil
}

// ErrNotLayout is wrapped by Open's error for an existing directory that is
// not a layout (no oci-layout file). It wraps core.ErrNotFound.
var ErrNotLayout = fmt.Errorf("not an OCI layout: %w", core.ErrNotFound)

// checkDir says, as what, whether dir is a directory that exists.
func checkDir(what, dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: directory does not exist: %w", what, core.ErrNotFound)
	case err != nil:
		return fmt.Errorf("%s: %w", what, err)
	case !fi.IsDir():
		return fmt.Errorf("%s: not a directory: %w", what, core.ErrInvalid)
	}
	return nil
}

func isLayout(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, ocispec.ImageLayoutFile))
	return err == nil && fi.Mode().IsRegular()
}
