package layout

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/stevedore-oci/stevedore/core/atomicfile"
)

// lock takes the layout's exclusive lock, waiting until it is free or ctx is
// done. flock locks belong to the open file description, so two goroutines
// of one process exclude each other exactly like two processes do. The lock
// is released by the returned func (and by the kernel if the process dies).
func (s *Store) lock(ctx context.Context) (unlock func(), err error) {
	unlock, err = atomicfile.Lock(ctx, filepath.Join(s.dir, lockFile))
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", s.dir, err)
	}
	return unlock, nil
}
