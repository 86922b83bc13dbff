package layer

import (
	"archive/tar"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/stevedore-oci/stevedore/core"
)

// Default limits of a Reader.
const (
	// DefaultMaxEntrySize refuses single entries larger than 256 GiB: no
	// layer or blob is that big, and a forged header must not make a reader
	// wait for terabytes.
	DefaultMaxEntrySize = 256 << 30
	// DefaultMaxEntries refuses archives with more than 4 million entries.
	DefaultMaxEntries = 4 << 20
	// maxNameLen bounds entry and link names.
	maxNameLen = 4096
)

// Options tune the checks of a Reader. The zero value is strict.
type Options struct {
	// MaxEntrySize caps the size of one entry (0: DefaultMaxEntrySize).
	MaxEntrySize int64
	// MaxEntries caps the number of entries (0: DefaultMaxEntries).
	MaxEntries int
	// AllowDevices accepts character and block devices and FIFOs (layer
	// content); archives of images never hold them.
	AllowDevices bool
}

func (o Options) maxEntrySize() int64 {
	if o.MaxEntrySize > 0 {
		return o.MaxEntrySize
	}
	return DefaultMaxEntrySize
}

func (o Options) maxEntries() int {
	if o.MaxEntries > 0 {
		return o.MaxEntries
	}
	return DefaultMaxEntries
}

// Reader reads a tar stream and refuses, with an error naming the entry and
// wrapping core.ErrInvalid (core.ErrTooLarge for sizes), any entry that could
// reach outside the directory the archive describes.
type Reader struct {
	tr   *tar.Reader
	opts Options
	n    int
	err  error
}

// NewReader reads the tar stream r with the checks of opts.
func NewReader(r io.Reader, opts Options) *Reader {
	return &Reader{tr: tar.NewReader(r), opts: opts}
}

// Next advances to the next entry. The returned header's Name (and Linkname
// for hard links) is cleaned: no leading "./", no trailing "/", never
// absolute and never containing "..". The root directory itself ("./")
// is returned with Name ".". It returns io.EOF at the end.
func (r *Reader) Next() (*tar.Header, error) {
	if r.err != nil {
		return nil, r.err
	}
	hdr, err := r.tr.Next()
	// A PAX global header ('g', written by git archive, Python's tarfile
	// and others) describes the entries after it: archive/tar returns it
	// as an entry of its own, but it names no file. Extractors (GNU tar,
	// docker, containers/storage) skip it, and so do we.
	for err == nil && hdr.Typeflag == tar.TypeXGlobalHeader {
		hdr, err = r.tr.Next()
	}
	if err == io.EOF {
		r.err = io.EOF
		return nil, io.EOF
	}
	if err != nil {
		r.err = fmt.Errorf("tar entry %d: %v: %w", r.n+1, err, core.ErrInvalid)
		return nil, r.err
	}
	r.n++
	if r.n > r.opts.maxEntries() {
		r.err = fmt.Errorf("tar: more than %d entries: %w", r.opts.maxEntries(), core.ErrTooLarge)
		return nil, r.err
	}
	if err := CheckHeader(hdr, r.opts); err != nil {
		r.err = err
		return nil, err
	}
	return hdr, nil
}

// Read reads the content of the current entry.
func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.tr.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("tar: %v: %w", err, core.ErrInvalid)
	}
	return n, err
}

func unsafeEntry(name, why string) error {
	return fmt.Errorf("tar entry %q: %s: %w", name, why, core.ErrInvalid)
}

// CleanName validates an entry name and returns it cleaned (no "./"
// prefix, no trailing "/"; the root is "."). Absolute names, names with a
// ".." element, NUL bytes or over-long names are refused.
func CleanName(name string) (string, error) {
	switch {
	case name == "":
		return "", unsafeEntry(name, "empty name")
	case len(name) > maxNameLen:
		return "", unsafeEntry(name[:64]+"...", "name too long")
	case strings.ContainsRune(name, 0):
		return "", unsafeEntry(name, "NUL byte in name")
	case strings.HasPrefix(name, "/"):
		return "", unsafeEntry(name, "absolute path")
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return "", unsafeEntry(name, "path contains ..")
		}
	}
	return path.Clean(name), nil
}

// CheckHeader validates hdr in place (see Reader.Next) and cleans its names.
func CheckHeader(hdr *tar.Header, opts Options) error {
	name, err := CleanName(hdr.Name)
	if err != nil {
		return err
	}
	hdr.Name = name
	if hdr.Size < 0 {
		return unsafeEntry(name, "negative size")
	}
	if hdr.Size > opts.maxEntrySize() {
		return fmt.Errorf("tar entry %q: size %d over the %d byte limit: %w", name, hdr.Size, opts.maxEntrySize(), core.ErrTooLarge)
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeDir, tar.TypeGNUSparse:
		if name == "." && hdr.Typeflag != tar.TypeDir {
			return unsafeEntry(hdr.Name, "a file cannot be the archive root")
		}
	case tar.TypeSymlink:
		if name == "." {
			return unsafeEntry(name, "the archive root cannot be a link")
		}
		if err := checkSymlink(name, hdr.Linkname); err != nil {
			return err
		}
	case tar.TypeLink:
		target, err := CleanName(hdr.Linkname)
		if err != nil || target == "." {
			return unsafeEntry(name, fmt.Sprintf("hard link to %q escapes the archive", hdr.Linkname))
		}
		hdr.Linkname = target
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if !opts.AllowDevices {
			return unsafeEntry(name, "device node or FIFO not expected here")
		}
	default:
		return unsafeEntry(name, fmt.Sprintf("unsupported entry type %q", hdr.Typeflag))
	}
	return nil
}

// checkSymlink refuses symlink targets that are absolute or that climb
// above the archive root from the link's directory.
func checkSymlink(name, target string) error {
	switch {
	case target == "":
		return unsafeEntry(name, "symlink with an empty target")
	case len(target) > maxNameLen || strings.ContainsRune(target, 0):
		return unsafeEntry(name, "malformed symlink target")
	case strings.HasPrefix(target, "/"):
		return unsafeEntry(name, fmt.Sprintf("symlink to absolute path %q", target))
	}
	if _, ok := resolveLink(name, target); !ok {
		return unsafeEntry(name, fmt.Sprintf("symlink to %q escapes the archive", target))
	}
	return nil
}

// resolveLink returns the archive name a relative symlink at name points
// to, and false when it climbs above the root. It works on names only.
func resolveLink(name, target string) (string, bool) {
	depth := strings.Count(path.Dir(name), "/") + 1
	if path.Dir(name) == "." {
		depth = 0
	}
	for _, elem := range strings.Split(target, "/") {
		switch elem {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return "", false
			}
		default:
			depth++
		}
	}
	return path.Join(path.Dir(name), target), true
}
