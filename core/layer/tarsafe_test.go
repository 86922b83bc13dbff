package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
)

type member struct {
	name, link, body string
	typ              byte
	size             int64 // header size override when > 0
}

func buildTar(t testing.TB, ms ...member) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range ms {
		typ := m.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		h := &tar.Header{Name: m.name, Linkname: m.link, Typeflag: typ, Mode: 0o644, Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(m.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(m.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(b []byte, opts Options) ([]string, error) {
	r := NewReader(bytes.NewReader(b), opts)
	var names []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			return names, nil
		}
		if err != nil {
			return names, err
		}
		names = append(names, h.Name)
		if _, err := io.Copy(io.Discard, r); err != nil {
			return names, err
		}
	}
}

func TestReaderRefusesUnsafeEntries(t *testing.T) {
	tests := []struct {
		name  string
		m     member
		opts  Options
		is    error
		inMsg string
	}{
		{"dotdot", member{name: "../evil", body: "x"}, Options{}, core.ErrInvalid, `"../evil"`},
		{"inner dotdot", member{name: "a/../../evil", body: "x"}, Options{}, core.ErrInvalid, "contains .."},
		{"absolute", member{name: "/etc/passwd", body: "x"}, Options{}, core.ErrInvalid, "absolute"},
		{"symlink absolute", member{name: "l", link: "/etc", typ: tar.TypeSymlink}, Options{}, core.ErrInvalid, "absolute"},
		{"symlink escape", member{name: "a/l", link: "../../x", typ: tar.TypeSymlink}, Options{}, core.ErrInvalid, "escapes"},
		{"symlink escape via dirs", member{name: "l", link: "a/../../x", typ: tar.TypeSymlink}, Options{}, core.ErrInvalid, "escapes"},
		{"hardlink escape", member{name: "h", link: "../x", typ: tar.TypeLink}, Options{}, core.ErrInvalid, "hard link"},
		{"hardlink absolute", member{name: "h", link: "/x", typ: tar.TypeLink}, Options{}, core.ErrInvalid, "hard link"},
		{"char device", member{name: "dev/null", typ: tar.TypeChar}, Options{}, core.ErrInvalid, "device"},
		{"fifo", member{name: "p", typ: tar.TypeFifo}, Options{}, core.ErrInvalid, "device"},
		{"too large", member{name: "big", body: strings.Repeat("x", 100)}, Options{MaxEntrySize: 10}, core.ErrTooLarge, `"big"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := buildTar(t, member{name: "ok", body: "fine"}, tt.m)
			names, err := readAll(b, tt.opts)
			if err == nil {
				t.Fatalf("accepted: %v", names)
			}
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.inMsg) {
				t.Fatalf("error %q, want %v containing %q", err, tt.is, tt.inMsg)
			}
			if len(names) != 1 || names[0] != "ok" {
				t.Fatalf("entries before the bad one: %v", names)
			}
		})
	}
}

func TestReaderAcceptsAndCleans(t *testing.T) {
	b := buildTar(t,
		member{name: "./", typ: tar.TypeDir},
		member{name: "./blobs/", typ: tar.TypeDir},
		member{name: "./blobs/a", body: "A"},
		member{name: "blobs/l", link: "a", typ: tar.TypeSymlink},
		member{name: "x/y/l2", link: "../../blobs/a", typ: tar.TypeSymlink},
		member{name: "h", link: "./blobs/a", typ: tar.TypeLink},
		member{name: "dev", typ: tar.TypeChar},
	)
	names, err := readAll(b, Options{AllowDevices: true})
	if err != nil {
		t.Fatal(err)
	}
	want := ".,blobs,blobs/a,blobs/l,x/y/l2,h,dev"
	if got := strings.Join(names, ","); got != want {
		t.Fatalf("names %s, want %s", got, want)
	}
	if _, err := readAll(b, Options{}); err == nil {
		t.Fatal("device accepted without AllowDevices")
	}
}

// A PAX global header is not an entry: skopeo, docker and GNU tar skip it,
// and an archive holding one (git archive, Python's tarfile) was refused.
func TestReaderSkipsPAXGlobalHeader(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "made by a tool"}}); err != nil {
		t.Fatal(err)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "index.json", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write([]byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	names, err := readAll(b, Options{})
	if err != nil || strings.Join(names, ",") != "index.json" {
		t.Fatalf("names %v, error %v", names, err)
	}
	ix, err := IndexTar(context.Background(), bytes.NewReader(b), int64(len(b)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ix.ReadFile("index.json", 10); err != nil || string(got) != "{}" {
		t.Fatalf("index.json: %q, %v", got, err)
	}
}

func TestReaderTooManyEntries(t *testing.T) {
	b := buildTar(t, member{name: "a"}, member{name: "b"}, member{name: "c"})
	if _, err := readAll(b, Options{MaxEntries: 2}); !errors.Is(err, core.ErrTooLarge) {
		t.Fatalf("error %v", err)
	}
}

func TestReaderTruncated(t *testing.T) {
	b := buildTar(t, member{name: "a", body: strings.Repeat("x", 2000)})
	_, err := readAll(b[:1024], Options{})
	if err == nil {
		t.Fatal("truncated tar accepted")
	}
}

func TestIndexReadsInPlace(t *testing.T) {
	b := buildTar(t,
		member{name: "./dir/", typ: tar.TypeDir},
		member{name: "dir/file", body: "hello"},
		member{name: strings.Repeat("long/", 40) + "name", body: "long name body"},
		member{name: "other/layer.tar", link: "../dir/file", typ: tar.TypeSymlink},
		member{name: "hard", link: "dir/file", typ: tar.TypeLink},
		member{name: "loop1", link: "loop2", typ: tar.TypeSymlink},
		member{name: "loop2", link: "loop1", typ: tar.TypeSymlink},
		member{name: "./dir", typ: tar.TypeDir}, // a directory again is harmless
	)
	ix, err := IndexTar(context.Background(), bytes.NewReader(b), int64(len(b)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"dir/file":                           "hello",
		"./dir/file":                         "hello",
		"other/layer.tar":                    "hello",
		"hard":                               "hello",
		strings.Repeat("long/", 40) + "name": "long name body",
	} {
		got, err := ix.ReadFile(name, 100)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if string(got) != want {
			t.Fatalf("%s: %q, want %q", name, got, want)
		}
	}
	if _, err := ix.Lookup("missing"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := ix.Lookup("loop1"); err == nil || !strings.Contains(err.Error(), "levels") {
		t.Fatalf("loop: %v", err)
	}
	if _, err := ix.Lookup("dir"); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("dir: %v", err)
	}
	if _, err := ix.ReadFile("dir/file", 2); !errors.Is(err, core.ErrTooLarge) {
		t.Fatalf("limit: %v", err)
	}
}

// Two entries of one name made the archive mean different things to
// different readers: skopeo's docker-archive takes the first, the index
// took the last. It is refused, naming the entry and both positions.
func TestIndexRefusesDuplicateEntries(t *testing.T) {
	for _, ms := range [][]member{
		{{name: "manifest.json", body: "first"}, {name: "x", body: "y"}, {name: "manifest.json", body: "second"}},
		{{name: "manifest.json", body: "first"}, {name: "x", body: "y"}, {name: "./manifest.json", body: "first"}},
		{{name: "blobs", typ: tar.TypeDir}, {name: "x", body: "y"}, {name: "blobs", body: "file"}},
		{{name: "manifest.json", body: "first"}, {name: "x", body: "y"}, {name: "manifest.json", link: "x", typ: tar.TypeSymlink}},
	} {
		b := buildTar(t, ms...)
		_, err := IndexTar(context.Background(), bytes.NewReader(b), int64(len(b)), Options{})
		if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "appears twice (entries 1 and 3)") || strings.Contains(err.Error(), "\n") {
			t.Fatalf("%v: error %v", ms, err)
		}
	}
}

func TestIndexRefusesHardlinkToMissing(t *testing.T) {
	b := buildTar(t, member{name: "h", link: "nothing", typ: tar.TypeLink})
	if _, err := IndexTar(context.Background(), bytes.NewReader(b), int64(len(b)), Options{}); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("error %v", err)
	}
}

func TestIndexRefusesContentPastEnd(t *testing.T) {
	b := buildTar(t, member{name: "a", body: strings.Repeat("x", 5000)})
	// Cut inside the content: the header promises more than remains.
	cut := b[:2048]
	if _, err := IndexTar(context.Background(), bytes.NewReader(cut), int64(len(cut)), Options{}); err == nil {
		t.Fatal("accepted")
	}
}
