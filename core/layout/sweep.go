package layout

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stevedore-oci/stevedore/core/atomicfile"
)

// staleAfter is how long a temporary file must have gone unchanged before
// a writer of the layout removes it. A crash, a power loss or a SIGKILL
// leaves the file being written behind, and nothing ever resumes it. A live
// writer changes its file far more often (a transfer that moves no byte for
// a minute is given up), so an hour leaves other processes' work alone.
var staleAfter = time.Hour

// sweepStale removes, once per Store, the temporary files of writes that
// died: in the temporary directory and, for index.json and oci-layout
// writes, in the layout directory itself.
func (s *Store) sweepStale() {
	s.swept.Do(func() {
		before := time.Now().Add(-staleAfter)
		for _, dir := range []string{s.tmpDir(), s.dir} {
			removeStale(dir, before)
		}
	})
}

// removeStale removes the temporary files (tmpPrefix) in dir that have not
// changed since before, and returns how many it removed.
func removeStale(dir string, before time.Time) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tmpPrefix) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil || !changedAt(fi).Before(before) {
			continue
		}
		if os.Remove(filepath.Join(dir, e.Name())) == nil {
			n++
		}
	}
	return n
}

// changedAt is when a file last changed: its inode change time, which a
// write, and also a new hard link (WriteBlobFile links a source blob, whose
// modification time may be old, under a temporary name), moves forward.
var changedAt = atomicfile.ChangeTime
