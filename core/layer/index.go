package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/stevedore-oci/stevedore/core"
)

// Entry is one member of an indexed tar.
type Entry struct {
	Name     string // cleaned, see CleanName
	Typeflag byte
	Linkname string
	Size     int64
	// Offset is where the entry's content starts in the tar.
	Offset int64
}

// Index lists the members of an uncompressed tar held in an io.ReaderAt so
// that each can be read in place without unpacking.
type Index struct {
	ra      io.ReaderAt
	entries map[string]Entry
}

// ErrSparse marks a sparse entry (GNU tar --sparse): its content is stored
// without its holes, so an Index cannot serve it in place. A Reader reads
// it whole; IndexTar wraps ErrSparse and the caller can rewrite the archive
// through a Reader and index the copy.
var ErrSparse = errors.New("a sparse file (tar --sparse), whose content is not stored in one piece")

// IsSparse tells whether hdr is a sparse entry, in the old GNU format or
// the PAX one (GNU.sparse.* records); archive/tar expands both on reading.
func IsSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// maxLinkHops bounds symlink chains followed by Lookup.
const maxLinkHops = 16

// IndexTar reads the headers of the uncompressed tar in ra (size bytes) once
// and records where each entry's content lies. Entries are checked as a
// Reader does. A name held by two entries (other than two directories) is
// refused: readers disagree on which counts (skopeo's docker-archive reads
// the first, extracting keeps the last), so such an archive would show one
// image to one tool and another to the next.
func IndexTar(ctx context.Context, ra io.ReaderAt, size int64, opts Options) (*Index, error) {
	sr := io.NewSectionReader(ra, 0, size)
	// archive/tar seeks over content when its reader is an io.Seeker, so
	// only headers are read, and after Next the position is the content's.
	r := NewReader(sr, opts)
	ix := &Index{ra: ra, entries: map[string]Entry{}}
	pos := map[string]int{} // entry number of each name, from 1
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		off, err := sr.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		if prev, ok := ix.entries[hdr.Name]; ok && (prev.Typeflag != tar.TypeDir || hdr.Typeflag != tar.TypeDir) {
			return nil, fmt.Errorf("tar entry %q: appears twice (entries %d and %d), the archive is ambiguous: %w", hdr.Name, pos[hdr.Name], n, core.ErrInvalid)
		}
		pos[hdr.Name] = n
		e := Entry{Name: hdr.Name, Typeflag: hdr.Typeflag, Linkname: hdr.Linkname, Size: hdr.Size, Offset: off}
		if IsSparse(hdr) {
			return nil, fmt.Errorf("tar entry %q: %w", hdr.Name, ErrSparse)
		}
		if e.Typeflag == tar.TypeRegA {
			e.Typeflag = tar.TypeReg
		}
		if e.Typeflag != tar.TypeReg {
			e.Size = 0
		}
		if off+e.Size > size {
			return nil, fmt.Errorf("tar entry %q: content runs past the end of the archive: %w", e.Name, core.ErrInvalid)
		}
		if e.Typeflag == tar.TypeLink {
			// A hard link shares an earlier member's content.
			t, ok := ix.entries[e.Linkname]
			if !ok || t.Typeflag != tar.TypeReg {
				return nil, fmt.Errorf("tar entry %q: hard link to %q which is not an earlier file: %w", e.Name, e.Linkname, core.ErrInvalid)
			}
			e.Typeflag, e.Size, e.Offset, e.Linkname = tar.TypeReg, t.Size, t.Offset, ""
		}
		ix.entries[e.Name] = e
	}
	return ix, nil
}

// Names lists the entry names, sorted.
func (ix *Index) Names() []string {
	out := make([]string, 0, len(ix.entries))
	for n := range ix.entries {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Lookup returns the regular file that name designates, following symlinks
// (which never leave the archive: their targets were checked). A missing
// entry wraps core.ErrNotFound.
func (ix *Index) Lookup(name string) (Entry, error) {
	orig := name
	clean, err := CleanName(name)
	if err != nil {
		return Entry{}, err
	}
	name = clean
	for hops := 0; hops <= maxLinkHops; hops++ {
		e, ok := ix.entries[name]
		if !ok {
			return Entry{}, fmt.Errorf("tar entry %q: %w", orig, core.ErrNotFound)
		}
		switch e.Typeflag {
		case tar.TypeReg:
			return e, nil
		case tar.TypeSymlink:
			next, ok := resolveLink(e.Name, e.Linkname)
			if !ok {
				return Entry{}, unsafeEntry(e.Name, "symlink escapes the archive")
			}
			name = next
		default:
			return Entry{}, fmt.Errorf("tar entry %q is not a regular file: %w", orig, core.ErrInvalid)
		}
	}
	return Entry{}, fmt.Errorf("tar entry %q: too many levels of symbolic links: %w", orig, core.ErrInvalid)
}

// Open returns a reader over the content of the file name designates.
func (ix *Index) Open(name string) (*io.SectionReader, Entry, error) {
	e, err := ix.Lookup(name)
	if err != nil {
		return nil, Entry{}, err
	}
	return io.NewSectionReader(ix.ra, e.Offset, e.Size), e, nil
}

// ReadFile reads a small member whole, refusing more than max bytes.
func (ix *Index) ReadFile(name string, max int64) ([]byte, error) {
	sr, e, err := ix.Open(name)
	if err != nil {
		return nil, err
	}
	if e.Size > max {
		return nil, fmt.Errorf("tar entry %q: %d bytes, over the %d byte limit: %w", name, e.Size, max, core.ErrTooLarge)
	}
	b := make([]byte, e.Size)
	if _, err := io.ReadFull(sr, b); err != nil {
		return nil, fmt.Errorf("tar entry %q: %w", name, err)
	}
	return b, nil
}
