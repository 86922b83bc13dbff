package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/stevedore-oci/stevedore/core/layer/layertest"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

// setTypeflag rewrites the typeflag of the 512-byte header at off and its
// checksum, after edit (if any) changed other fields.
func setTypeflag(b []byte, off int, typ byte, edit func(h []byte)) {
	h := b[off : off+512]
	h[156] = typ
	if edit != nil {
		edit(h)
	}
	copy(h[148:156], "        ")
	sum := 0
	for _, c := range h {
		sum += int(c)
	}
	copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// sparsify rewrites an archive so that every member named */layer.tar is
// stored as GNU tar --sparse does: its trailing 1024 zero bytes (the end
// of the layer's own tar) become a hole. pax selects the PAX 1.0 format
// (GNU.sparse.* records) instead of the old GNU one (typeflag 'S').
func sparsify(t *testing.T, raw []byte, pax bool) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(raw))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	n := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if hdr.Typeflag != tar.TypeReg || !strings.HasSuffix(hdr.Name, "/layer.tar") {
			hdr.Format = tar.FormatGNU
			if err := tw.WriteHeader(hdr); err != nil {
				t.Fatal(err)
			}
			tw.Write(data)
			continue
		}
		n++
		real := len(data)
		if !bytes.Equal(data[real-1024:], make([]byte, 1024)) {
			t.Fatalf("%s does not end with zeros", hdr.Name)
		}
		stored := data[:real-1024]
		if !pax {
			h := &tar.Header{Name: hdr.Name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(stored)), Format: tar.FormatGNU}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			tw.Flush()
			setTypeflag(buf.Bytes(), buf.Len()-512, tar.TypeGNUSparse, func(h []byte) {
				copy(h[386:398], fmt.Sprintf("%011o\x00", 0))
				copy(h[398:410], fmt.Sprintf("%011o\x00", len(stored)))
				copy(h[483:495], fmt.Sprintf("%011o\x00", real))
			})
			tw.Write(stored)
			continue
		}
		// PAX 1.0: an 'x' header with the GNU.sparse records, then a
		// regular member holding the map and the data.
		var recs strings.Builder
		for _, kv := range [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", hdr.Name}, {"GNU.sparse.realsize", fmt.Sprint(real)}} {
			rec := " " + kv[0] + "=" + kv[1] + "\n"
			l := len(rec) + 1
			for len(fmt.Sprint(l))+len(rec) != l {
				l++
			}
			fmt.Fprintf(&recs, "%d%s", l, rec)
		}
		if err := tw.WriteHeader(&tar.Header{Name: "PaxHeaders/" + filepath.Base(hdr.Name), Typeflag: tar.TypeReg, Size: int64(recs.Len()), Format: tar.FormatUSTAR}); err != nil {
			t.Fatal(err)
		}
		tw.Flush()
		setTypeflag(buf.Bytes(), buf.Len()-512, tar.TypeXHeader, nil)
		tw.Write([]byte(recs.String()))
		m := []byte(fmt.Sprintf("1\n0\n%d\n", len(stored)))
		m = append(m, make([]byte, 512-len(m))...)
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("GNUSparseFile.0/%d", n), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(m) + len(stored)), Format: tar.FormatUSTAR}); err != nil {
			t.Fatal(err)
		}
		tw.Write(m)
		tw.Write(stored)
	}
	tw.Close()
	if n == 0 {
		t.Fatal("no layer.tar member")
	}
	return buf.Bytes()
}

// TestDockerArchiveReadsSparse: GNU tar --sparse (old GNU or PAX format)
// stores a file without its holes. Such an archive was refused ("unsupported
// entry type 'S'") or, in PAX format, refused as "content runs past the end
// of the archive" (or read wrong, when the member was not the last), where
// skopeo and docker read it.
func TestDockerArchiveReadsSparse(t *testing.T) {
	tmp := t.TempDir()
	tmpdir := t.TempDir()
	t.Setenv("TMPDIR", tmpdir)
	ctx := context.Background()
	a := layertest.NewImage("sparse-a", layertest.Options{})
	b := layertest.NewImage("sparse-b", layertest.Options{})
	raw := legacyArchive(t, a, b)
	for _, pax := range []bool{false, true} {
		path := filepath.Join(tmp, fmt.Sprintf("sparse-pax-%v.tar", pax))
		if err := os.WriteFile(path, sparsify(t, raw, pax), 0o644); err != nil {
			t.Fatal(err)
		}
		src := transporttest.OpenEndpoint(t, New(nil), DockerArchive, path, pluginapi.ModeRead).(*dockerSource)
		for _, c := range []struct {
			ref string
			img layertest.Image
		}{{"first:1", a}, {"second:2", b}} {
			_, m := getManifest(t, src, c.ref)
			if configDigest(t, m) != c.img.Config.Desc.Digest {
				t.Fatalf("pax %v %s: wrong image", pax, c.ref)
			}
			pm, _ := manifest.Parse(m, "")
			for i, l := range pm.Layers {
				if l.Digest != c.img.DiffIDs[i] {
					t.Fatalf("pax %v %s: layer %d is %s, want %s", pax, c.ref, i, l.Digest, c.img.DiffIDs[i])
				}
				if got := transporttest.ReadBlob(t, src, l, 0); digest.FromBytes(got) != l.Digest {
					t.Fatalf("pax %v %s: layer %s content differs", pax, c.ref, l.Digest)
				}
			}
		}
		emptyDir(t, tmpdir) // the expanded copy has no name
		src.Close(ctx)
	}
}
