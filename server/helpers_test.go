package server_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/server"
)

// blob is test content with its descriptor.
type blob struct {
	desc ocispec.Descriptor
	data []byte
}

func newBlob(mt string, data []byte) blob {
	return blob{desc: ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(data), Size: int64(len(data))}, data: data}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// randomLayer is a gzipped tar holding one file of random bytes.
func randomLayer(t *testing.T, n int) blob {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	data := randomBytes(n)
	if err := tw.WriteHeader(&tar.Header{Name: "file.bin", Mode: 0o644, Size: int64(n), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write(data)
	_ = tw.Close()
	_ = gz.Close()
	return newBlob(ocispec.MediaTypeImageLayerGzip, buf.Bytes())
}

// image is a manifest with its config and layers.
type image struct {
	manifest blob
	config   blob
	layers   []blob
}

func randomImage(t *testing.T, arch string, layers int) image {
	t.Helper()
	var im image
	var diffIDs []digest.Digest
	for i := 0; i < layers; i++ {
		l := randomLayer(t, 1024+i*100)
		im.layers = append(im.layers, l)
		diffIDs = append(diffIDs, l.desc.Digest) // not the real diff id; fine for transport tests
	}
	cfg, _ := json.Marshal(ocispec.Image{Platform: ocispec.Platform{OS: "linux", Architecture: arch}, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: diffIDs}})
	im.config = newBlob(ocispec.MediaTypeImageConfig, cfg)
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: im.config.desc}
	for _, l := range im.layers {
		m.Layers = append(m.Layers, l.desc)
	}
	mb, _ := json.Marshal(m)
	im.manifest = newBlob(ocispec.MediaTypeImageManifest, mb)
	return im
}

func indexOf(ims ...image) blob {
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for _, im := range ims {
		var c ocispec.Image
		_ = json.Unmarshal(im.config.data, &c)
		d := im.manifest.desc
		d.Platform = &ocispec.Platform{OS: c.OS, Architecture: c.Architecture}
		idx.Manifests = append(idx.Manifests, d)
	}
	b, _ := json.Marshal(idx)
	return newBlob(ocispec.MediaTypeImageIndex, b)
}

// writeLayout writes images (and optionally an index over them) as an OCI
// layout tagged tag.
func writeLayout(t *testing.T, dir, tag string, idx *blob, ims ...image) {
	t.Helper()
	put := func(b blob) {
		p := filepath.Join(dir, "blobs", b.desc.Digest.Algorithm().String(), b.desc.Digest.Encoded())
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, im := range ims {
		put(im.config)
		put(im.manifest)
		for _, l := range im.layers {
			put(l)
		}
	}
	top := ims[0].manifest.desc
	if idx != nil {
		put(*idx)
		top = idx.desc
	}
	top.Annotations = map[string]string{ocispec.AnnotationRefName: tag}
	ib, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{top}})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
}

// testServer runs a handler on 127.0.0.1.
func testServer(t *testing.T, o server.Options) (*httptest.Server, string) {
	t.Helper()
	if o.Root == "" && o.Store == nil {
		o.Root = t.TempDir()
	}
	h, err := server.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts, o.Root
}

// do sends one request and returns status, headers and body.
func do(t *testing.T, method, url string, body []byte, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// pushBlob uploads b monolithically and fails the test on any error.
func pushBlob(t *testing.T, base, repo string, b blob, hdr ...string) {
	t.Helper()
	st, _, body := do(t, "POST", fmt.Sprintf("%s/v2/%s/blobs/uploads/?digest=%s", base, repo, b.desc.Digest), b.data, append([]string{"Content-Type", "application/octet-stream"}, hdr...)...)
	if st != http.StatusCreated {
		t.Fatalf("push blob %s to %s: %d %s", b.desc.Digest, repo, st, body)
	}
}

func pushManifest(t *testing.T, base, repo, ref string, b blob, hdr ...string) http.Header {
	t.Helper()
	st, h, body := do(t, "PUT", fmt.Sprintf("%s/v2/%s/manifests/%s", base, repo, ref), b.data, append([]string{"Content-Type", b.desc.MediaType}, hdr...)...)
	if st != http.StatusCreated {
		t.Fatalf("push manifest %s to %s:%s: %d %s", b.desc.Digest, repo, ref, st, body)
	}
	return h
}

func pushImage(t *testing.T, base, repo, tag string, im image, hdr ...string) {
	t.Helper()
	pushBlob(t, base, repo, im.config, hdr...)
	for _, l := range im.layers {
		pushBlob(t, base, repo, l, hdr...)
	}
	pushManifest(t, base, repo, tag, im.manifest, hdr...)
}

// errCode extracts the first error code of a spec error envelope.
func errCode(body []byte) string {
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
