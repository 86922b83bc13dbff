package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
)

func randomBlob(t *testing.T, n int) ([]byte, ocispec.Descriptor) {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(b), Size: int64(n)}
}

// TestGetBlobResumes breaks a blob download twice; the reader picks up with
// Range requests and the content verifies.
func TestGetBlobResumes(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	img := reg.Seed("r", "v1", 1, 3<<20)
	layer := img.Layers[0]
	src := openReader(t, testPlugin(), reg, "r", nil)

	reg.AddFault(registrytest.Fault{Kind: registrytest.CutResponse, Match: registrytest.MatchBlobGet(layer.Digest), At: 1 << 20, Times: 2})
	b, err := readBlob(ctx, src, layer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, img.Blobs[layer.Digest]) {
		t.Fatal("content differs")
	}
	var ranges []string
	for _, r := range reg.Requests() {
		if r.IsBlobGet() {
			ranges = append(ranges, r.Header.Get("Range"))
		}
	}
	// The first GET is cut at 1 MiB, the second (from 1 MiB) is cut after
	// another MiB, the third finishes.
	want := []string{"", "bytes=1048576-", "bytes=2097152-"}
	if strings.Join(ranges, ",") != strings.Join(want, ",") {
		t.Fatalf("ranges %q, want %q", ranges, want)
	}
	if st := reg.Stats(); st.BlobDownloadBytes != 3<<20 {
		t.Fatalf("downloaded %d bytes, want exactly the blob's %d", st.BlobDownloadBytes, 3<<20)
	}

	// A read from an offset gets the rest.
	rc, err := src.GetBlob(ctx, layer, 1000)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(rest, img.Blobs[layer.Digest][1000:]) {
		t.Fatalf("offset read: %v", err)
	}

	// A stream that keeps breaking without progress gives up.
	reg.AddFault(registrytest.Fault{Kind: registrytest.CutResponse, Match: registrytest.MatchBlobGet(layer.Digest), At: 0})
	_, err = readBlob(ctx, src, layer)
	mustIs(t, err, core.ErrUnavailable)
	reg.ClearFaults()
}

// TestTamperedContent flips a byte in transit: a blob fails the host's
// verification, a manifest fails GetManifest and Resolve by digest, even
// when the registry's Docker-Content-Digest header is stripped.
func TestTamperedContent(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	img := reg.Seed("t", "v1", 1, 50_000)
	layer := img.Layers[0]
	src := openReader(t, testPlugin(), reg, "t", nil)

	reg.AddFault(registrytest.Fault{Kind: registrytest.FlipByte, Match: registrytest.MatchBlobGet(layer.Digest), At: 123, Times: 1})
	_, err := readBlob(ctx, src, layer)
	mustIs(t, err, core.ErrDigestMismatch)

	md := img.Manifest.Digest.String()
	reg.AddFault(registrytest.Fault{Kind: registrytest.FlipByte, Match: registrytest.MatchManifest(http.MethodGet, md), At: 10, Times: 1})
	_, err = src.GetManifest(ctx, img.Manifest)
	mustIs(t, err, core.ErrDigestMismatch)

	// No Docker-Content-Digest anywhere: Resolve by tag falls back to GET
	// and computes the digest; by digest it checks the bytes.
	reg.AddFault(registrytest.Fault{Kind: registrytest.StripHeaders, Match: registrytest.MatchManifest("", ""), Headers: []string{"Docker-Content-Digest"}})
	d, err := src.Resolve(ctx, "v1")
	if err != nil || d.Digest != img.Manifest.Digest || d.Size != img.Manifest.Size {
		t.Fatalf("resolve without digest header: %+v, %v", d, err)
	}
	raw, err := src.GetManifest(ctx, img.Manifest)
	if err != nil || !bytes.Equal(raw, img.ManifestRaw) {
		t.Fatalf("get manifest without digest header: %v", err)
	}
	reg.AddFault(registrytest.Fault{Kind: registrytest.FlipByte, Match: registrytest.MatchManifest(http.MethodGet, md), At: 10, Times: 1})
	_, err = src.GetManifest(ctx, img.Manifest)
	mustIs(t, err, core.ErrDigestMismatch)
	reg.ClearFaults()

	// The destination side: a stream that does not match its descriptor is
	// refused by the registry and never becomes visible.
	dst := openWriter(t, testPlugin(), reg, "t2", nil)
	b, desc := randomBlob(t, 10_000)
	b[0] ^= 0xff
	err = dst.PutBlob(ctx, desc, bytes.NewReader(b))
	mustIs(t, err, core.ErrDigestMismatch)
	if ok, _ := reg.HasBlob("t2", desc.Digest); ok {
		t.Fatal("corrupt blob became visible")
	}
}

// TestChunkedUpload sends a blob over the monolithic limit in PATCH chunks,
// and resumes after failures that registry can recover from.
func TestChunkedUpload(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthBasic})
	p := testPlugin()
	p.MonolithicMax = 1 << 20
	p.ChunkSize = 256 << 10
	p.ReplayWindow = 256 << 10 // a PATCH refused whole can be sent again
	dst := openWriter(t, p, reg, "c", nil)

	b, desc := randomBlob(t, 1<<20+300<<10) // 5 full chunks and a partial one
	reg.ResetStats()
	if err := dst.PutBlob(ctx, desc, onlyReader{bytes.NewReader(b)}); err != nil {
		t.Fatal(err)
	}
	if st := reg.Stats(); st.ByMethod["PATCH"] != 6 || st.BlobUploadBytes != desc.Size {
		t.Fatalf("PATCHes %d, bytes %d; want 6 and %d", st.ByMethod["PATCH"], st.BlobUploadBytes, desc.Size)
	}
	if ok, err := reg.HasBlob("c", desc.Digest); err != nil || !ok {
		t.Fatalf("blob not there: %v", err)
	}

	// A PATCH answered 503 (not retried blindly: the upload asks for its
	// status and sends the chunk again from the replay window), and a PATCH
	// whose connection drops before reaching the registry.
	b, desc = randomBlob(t, 1<<20+300<<10)
	reg.ResetStats()
	reg.AddFault(registrytest.Fault{Kind: registrytest.Respond, Match: registrytest.MatchUploadPatch(), Status: http.StatusServiceUnavailable, Times: 1})
	if err := dst.PutBlob(ctx, desc, onlyReader{bytes.NewReader(b)}); err != nil {
		t.Fatal(err)
	}
	reg.AddFault(registrytest.Fault{Kind: registrytest.Drop, Match: registrytest.MatchUploadPatch(), Times: 1})
	b2, desc2 := randomBlob(t, 1<<20+1)
	if err := dst.PutBlob(ctx, desc2, onlyReader{bytes.NewReader(b2)}); err != nil {
		t.Fatal(err)
	}
	var seq []string
	for _, r := range reg.Requests() {
		if r.Method == http.MethodPatch || (r.Method == http.MethodGet && r.IsBlobUpload()) {
			seq = append(seq, r.Method)
		}
	}
	if got := strings.Join(seq[:3], " "); got != "PATCH GET PATCH" {
		t.Fatalf("after a 503 PATCH: %s, want PATCH GET PATCH (status, then resend)", got)
	}
	for _, d := range []digest.Digest{desc.Digest, desc2.Digest} {
		if ok, err := reg.HasBlob("c", d); err != nil || !ok {
			t.Fatalf("blob %s not there after resume: %v", d, err)
		}
	}

	// A PATCH cut half-way: distribution keeps the partial bytes but cancels
	// an upload whose state token is behind, so this cannot resume; the
	// error says so and nothing becomes visible.
	b, desc = randomBlob(t, 1<<20+1)
	reg.AddFault(registrytest.Fault{Kind: registrytest.CutRequest, Match: registrytest.MatchUploadPatch(), At: 100_000, Times: 1})
	err := dst.PutBlob(ctx, desc, onlyReader{bytes.NewReader(b)})
	if err == nil || !strings.Contains(err.Error(), "cannot resume") {
		t.Fatalf("cut PATCH: %v, want a cannot-resume error", err)
	}
	if ok, _ := reg.HasBlob("c", desc.Digest); ok {
		t.Fatal("blob visible after a failed upload")
	}

	// The source stream failing is reported as such, not retried.
	_, desc = randomBlob(t, 1<<20+1)
	err = dst.PutBlob(ctx, desc, io.MultiReader(bytes.NewReader(make([]byte, 1000)), errReader{}))
	if err == nil || !strings.Contains(err.Error(), "source broke") {
		t.Fatalf("broken source: %v", err)
	}
}

// onlyReader hides every method but Read (the host's streams are plain
// readers).
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errSourceBroke }

var errSourceBroke = &sourceError{}

type sourceError struct{}

func (*sourceError) Error() string { return "source broke" }

// TestMonolithicAndSecondPush pushes a blob from a plain reader in one PUT with
// Content-Length set, and a second push of the same image moves no blob
// bytes.
func TestMonolithicAndSecondPush(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthToken})
	img, err := registrytest.NewImage(2, 200_000)
	if err != nil {
		t.Fatal(err)
	}
	dst := openWriter(t, testPlugin(), reg, "m/n", nil)
	pushImage(t, dst, img, "v1")
	var puts int
	for _, r := range reg.Requests() {
		if r.Method == http.MethodPut && r.IsBlobUpload() {
			puts++
			if r.Header.Get("Content-Length") == "" && r.BytesIn > 0 {
				t.Fatal("blob PUT without Content-Length")
			}
		}
		if r.Method == http.MethodPatch {
			t.Fatal("small blob sent in chunks")
		}
	}
	if puts != 3 {
		t.Fatalf("%d blob PUTs, want 3", puts)
	}

	reg.ResetStats()
	pushImage(t, openWriter(t, testPlugin(), reg, "m/n", nil), img, "v1")
	st := reg.Stats()
	if st.BlobUploadBytes != 0 || st.Uploads != 0 {
		t.Fatalf("second push moved %d blob bytes in %d uploads", st.BlobUploadBytes, st.Uploads)
	}
}
