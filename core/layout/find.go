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
	fi, err := os.Stat(root)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("oci layouts under %s: directory does not exist: %w", root, core.ErrNotFound)
		}
		return nil, fmt.Errorf("oci layouts under %s: %w", root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("oci layouts under %s: not a directory: %w", root, core.ErrInvalid)
	}
	var out []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
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

func isLayout(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, ocispec.ImageLayoutFile))
	return err == nil && fi.Mode().IsRegular()
}
