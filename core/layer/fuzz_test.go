package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"path"
	"strings"
	"testing"
)

func seedTars(f *testing.F) {
	f.Add(buildTar(f, member{name: "a", body: "x"}))
	f.Add(buildTar(f, member{name: "./d/", typ: tar.TypeDir}, member{name: "d/f", body: "hello"}, member{name: "d/l", link: "f", typ: tar.TypeSymlink}))
	f.Add(buildTar(f, member{name: "h", link: "a", typ: tar.TypeLink}))
	f.Add(buildTar(f, member{name: strings.Repeat("n/", 80) + "x", body: "long"}))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0}, 1024))
}

// checkName asserts the invariant every accepted name must satisfy.
func checkName(t *testing.T, name string) {
	if name == "" || strings.HasPrefix(name, "/") || path.Clean(name) != name {
		t.Fatalf("accepted unclean name %q", name)
	}
	for _, e := range strings.Split(name, "/") {
		if e == ".." {
			t.Fatalf("accepted name with ..: %q", name)
		}
	}
}

func FuzzReader(f *testing.F) {
	seedTars(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b), Options{MaxEntrySize: 1 << 20, MaxEntries: 1000})
		for {
			h, err := r.Next()
			if err != nil {
				return
			}
			checkName(t, h.Name)
			switch h.Typeflag {
			case tar.TypeSymlink:
				if strings.HasPrefix(h.Linkname, "/") {
					t.Fatalf("absolute symlink accepted: %q", h.Linkname)
				}
				if p, ok := resolveLink(h.Name, h.Linkname); !ok || p == ".." || strings.HasPrefix(p, "../") {
					t.Fatalf("escaping symlink accepted: %q -> %q", h.Name, h.Linkname)
				}
			case tar.TypeLink:
				checkName(t, h.Linkname)
			case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
				t.Fatalf("device accepted: %q", h.Name)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
		}
	})
}

func FuzzIndex(f *testing.F) {
	seedTars(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		ix, err := IndexTar(context.Background(), bytes.NewReader(b), int64(len(b)), Options{MaxEntrySize: 1 << 20, MaxEntries: 1000})
		if err != nil {
			return
		}
		for _, n := range ix.Names() {
			checkName(t, n)
			e, err := ix.Lookup(n)
			if err != nil {
				continue
			}
			if e.Offset < 0 || e.Offset+e.Size > int64(len(b)) {
				t.Fatalf("entry %q outside the archive: %d+%d of %d", n, e.Offset, e.Size, len(b))
			}
		}
	})
}

func FuzzDecompress(f *testing.F) {
	f.Add([]byte("plain"))
	f.Add(gz(f, []byte("gzip content")))
	f.Add(zst(f, []byte("zstd content")))
	f.Fuzz(func(t *testing.T, b []byte) {
		rc, _, err := Decompress(bytes.NewReader(b))
		if err != nil {
			return
		}
		defer rc.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(rc, 16<<20))
	})
}
