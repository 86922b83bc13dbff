package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/stevedore-oci/stevedore/core"
)

// FollowLinks returns the path that p designates when p is a symlink (or a
// chain of them, dangling or not), else p. Writers that stage a new file
// or directory beside their destination and rename it into place resolve
// the destination first, so that they replace what the link designates, as
// skopeo, docker save -o and tar -f, which write through links, do, rather
// than the link itself.
func FollowLinks(p string) (string, error) {
	for hops := 0; hops < 40; hops++ {
		fi, err := os.Lstat(p)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			return p, nil
		}
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		p = target
	}
	return "", fmt.Errorf("too many levels of symbolic links: %w", core.ErrInvalid)
}
