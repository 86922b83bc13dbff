package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
)

// Chunked uploads against the registry quirks that break them in the field,
// each played by the proxy in front of a real docker-registry (which stores
// the bytes and checks the digest when the upload is committed).

// patchOver matches upload PATCHes carrying more than n bytes.
func patchOver(n int64) registrytest.Match {
	patch := registrytest.MatchUploadPatch()
	return func(r *http.Request) bool { return patch(r) && r.ContentLength > n }
}

// ghcrTooLarge is GHCR's answer to an upload PATCH over its cap.
func ghcrTooLarge(limit string) registrytest.Fault {
	return registrytest.Fault{
		Kind: registrytest.Respond, Status: http.StatusRequestedRangeNotSatisfiable,
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   `{"errors":[{"code":"REQUESTED_RANGE_NOT_SATISFIABLE","message":"the request body is too large and exceeds the maximum permissible limit of ` + limit + `"}]}`,
	}
}

// wantBlob fails the test unless reg's repository holds desc.
func wantBlob(t *testing.T, reg *registrytest.Registry, repository string, desc ocispec.Descriptor) {
	t.Helper()
	if ok, err := reg.HasBlob(repository, desc.Digest); err != nil || !ok {
		t.Fatalf("blob %s not in %s: %v", desc.Digest, repository, err)
	}
}

// patchSizes lists the body sizes of the upload PATCHes reg saw, and how
// many of them were refused.
func patchSizes(reg *registrytest.Registry) (sizes []int64, refused int) {
	for _, r := range reg.Requests() {
		if r.Method != http.MethodPatch {
			continue
		}
		n, _ := strconv.ParseInt(r.Header.Get("Content-Length"), 10, 64)
		if n == 0 {
			n = r.BytesIn
		}
		sizes = append(sizes, n)
		if r.Status >= 400 {
			refused++
		}
	}
	return sizes, refused
}

// TestChunkedUploadUnderRegistryCap: GHCR refuses upload PATCHes over 4 MiB
// (416, "the request body is too large and exceeds the maximum permissible
// limit of 4.00MiB"). The upload goes on in chunks under the cap it names,
// from the same session, and later uploads to that registry start there.
// Here the cap is 64 KiB, 0.06 MiB as GHCR would print it.
func TestChunkedUploadUnderRegistryCap(t *testing.T) {
	const limit = 64 << 10
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	f := ghcrTooLarge("0.06MiB")
	f.Match = patchOver(limit)
	reg.AddFault(f)

	p := testPlugin()
	p.MonolithicMax, p.ChunkSize, p.ReplayWindow = 256<<10, 256<<10, 256<<10
	dst := openWriter(t, p, reg, "capped", nil)

	check := func(name string, wantRefused int, put func() error, size int64) {
		t.Helper()
		reg.ResetStats()
		if err := put(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sizes, refused := patchSizes(reg)
		if refused != wantRefused {
			t.Fatalf("%s: %d PATCHes refused (sizes %v), want %d", name, refused, sizes, wantRefused)
		}
		var sent int64
		for _, n := range sizes[refused:] {
			if n > limit {
				t.Fatalf("%s: a %d-byte PATCH after the refusal (sizes %v)", name, n, sizes)
			}
			sent += n
		}
		if sent != size {
			t.Fatalf("%s: %d bytes in accepted PATCHes, want the blob's %d", name, sent, size)
		}
	}

	// A stream: the refused chunk is sent again from the replay window.
	b, desc := randomBlob(t, 1<<20+1000)
	check("stream", 1, func() error { return dst.PutBlob(ctx, desc, onlyReader{bytes.NewReader(b)}) }, desc.Size)
	wantBlob(t, reg, "capped", desc)
	// The next upload to the registry starts under the cap.
	b, desc = randomBlob(t, 300<<10)
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	check("second", 0, func() error { return dst.PutBlobFile(ctx, desc, path) }, desc.Size)
	wantBlob(t, reg, "capped", desc)
}

// TestChunkedUploadUnnamedCap: a proxy in front of a registry refuses large
// request bodies with a bare 413; the chunk is halved until one passes.
func TestChunkedUploadUnnamedCap(t *testing.T) {
	const limit = 64 << 10
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	reg.AddFault(registrytest.Fault{Kind: registrytest.Respond, Match: patchOver(limit), Status: http.StatusRequestEntityTooLarge, Body: "Request Entity Too Large"})

	p := testPlugin()
	p.MonolithicMax, p.ChunkSize = 256<<10, 256<<10
	dst := openWriter(t, p, reg, "capped", nil)
	b, desc := randomBlob(t, 1<<20)
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := dst.PutBlobFile(ctx, desc, path); err != nil {
		t.Fatal(err)
	}
	sizes, refused := patchSizes(reg)
	// 256 KiB and 128 KiB refused, then 64 KiB chunks.
	if refused != 2 || len(sizes) != 2+16 {
		t.Fatalf("PATCH sizes %v (%d refused), want 2 refused then 16 of 64 KiB", sizes, refused)
	}
	wantBlob(t, reg, "capped", desc)
}

// TestChunkedUploadCapPastReplayWindow: when the refused chunk was read from
// a stream further than the replay window reaches, the upload cannot go on;
// it fails as unavailable (the host starts the blob again) and the retry
// uses chunks under the cap from the start.
func TestChunkedUploadCapPastReplayWindow(t *testing.T) {
	const limit = 64 << 10
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	f := ghcrTooLarge("0.06MiB")
	f.Match, f.Drain = patchOver(limit), true
	reg.AddFault(f)

	p := testPlugin()
	p.MonolithicMax, p.ChunkSize, p.ReplayWindow = 256<<10, 256<<10, 16<<10
	dst := openWriter(t, p, reg, "capped", nil)
	b, desc := randomBlob(t, 1<<20)
	err := dst.PutBlob(ctx, desc, onlyReader{bytes.NewReader(b)})
	mustIs(t, err, core.ErrUnavailable)
	if !strings.Contains(err.Error(), "too large") {
		t.Fatalf("error %q does not say the chunk was too large", err)
	}
	if ok, _ := reg.HasBlob("capped", desc.Digest); ok {
		t.Fatal("blob visible after a failed upload")
	}
	reg.ResetStats()
	if err := dst.PutBlob(ctx, desc, onlyReader{bytes.NewReader(b)}); err != nil {
		t.Fatal(err)
	}
	if _, refused := patchSizes(reg); refused != 0 {
		t.Fatalf("retry: %d PATCHes refused, want none", refused)
	}
	wantBlob(t, reg, "capped", desc)
}

// TestChunkedUploadStaleRange: ECR stores every chunk but its Range header
// stays at the end of the first one (aws/containers-roadmap#2831). The
// upload trusts the 202s and the registry's digest check at commit.
func TestChunkedUploadStaleRange(t *testing.T) {
	const chunk = 256 << 10
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	patch := registrytest.MatchUploadPatch()
	reg.AddFault(registrytest.Fault{
		Kind:   registrytest.SetHeaders,
		Match:  func(r *http.Request) bool { return patch(r) && !strings.HasPrefix(r.Header.Get("Content-Range"), "0-") },
		Header: http.Header{"Range": {"0-" + strconv.Itoa(chunk-1)}},
	})

	p := testPlugin()
	p.MonolithicMax, p.ChunkSize = chunk, chunk
	dst := openWriter(t, p, reg, "stale", nil)
	b, desc := randomBlob(t, 1<<20+300<<10)
	if err := dst.PutBlob(ctx, desc, onlyReader{bytes.NewReader(b)}); err != nil {
		t.Fatal(err)
	}
	if st := reg.Stats(); st.ByMethod["PATCH"] != 6 || st.BlobUploadBytes != desc.Size {
		t.Fatalf("PATCHes %d, bytes %d; want 6 and %d (each byte once)", st.ByMethod["PATCH"], st.BlobUploadBytes, desc.Size)
	}
	wantBlob(t, reg, "stale", desc)
}

// TestChunkedUploadMinLength: a registry that names a minimum chunk
// (OCI-Chunk-Min-Length, ECR-style part sizes) gets chunks of at least that.
func TestChunkedUploadMinLength(t *testing.T) {
	const minLen = 400_000
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	reg.AddFault(registrytest.Fault{
		Kind:   registrytest.SetHeaders,
		Match:  registrytest.MatchMethodPath(http.MethodPost, "/blobs/uploads/"),
		Header: http.Header{"Oci-Chunk-Min-Length": {strconv.Itoa(minLen)}},
	})
	p := testPlugin()
	p.MonolithicMax, p.ChunkSize = 256<<10, 256<<10
	dst := openWriter(t, p, reg, "min", nil)
	b, desc := randomBlob(t, 1<<20)
	if err := dst.PutBlob(ctx, desc, onlyReader{bytes.NewReader(b)}); err != nil {
		t.Fatal(err)
	}
	sizes, _ := patchSizes(reg)
	want := []int64{minLen, minLen, 1<<20 - 2*minLen}
	if fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Fatalf("PATCH sizes %v, want %v", sizes, want)
	}
	wantBlob(t, reg, "min", desc)
}

func TestTooLarge(t *testing.T) {
	for _, c := range []struct {
		err      error
		size     int64
		minChunk int64
		want     int64 // 0: not a size refusal, or cannot shrink
	}{
		{&httpError{status: 416, detail: "REQUESTED_RANGE_NOT_SATISFIABLE: the request body is too large and exceeds the maximum permissible limit of 4.00MiB"}, 64 << 20, 0, 4 << 20},
		{&httpError{status: 413, detail: "Request Entity Too Large"}, 64 << 20, 0, 32 << 20},
		{&httpError{status: 413}, 64 << 20, 40 << 20, 0}, // half is under the registry's minimum
		{&httpError{status: 413}, minChunkFloor, 0, 0},   // already at the floor
		{&httpError{status: 400, detail: "body exceeds limit of 1000000 bytes"}, 4 << 20, 0, 1_000_000},
		{&httpError{status: 416, detail: "body exceeds the limit of 128MiB"}, 64 << 20, 0, 32 << 20}, // a limit above the chunk says nothing
		{&httpError{status: 416, detail: "BLOB_UPLOAD_INVALID"}, 64 << 20, 0, 0},                     // an offset refusal
		{&httpError{status: 500, detail: "too large"}, 64 << 20, 0, 0},
		{fmt.Errorf("connection reset"), 64 << 20, 0, 0},
	} {
		got, ok := tooLarge(c.err, c.size, c.minChunk)
		if ok != (c.want != 0) || got != c.want {
			t.Errorf("tooLarge(%v, %d, %d) = %d, %v; want %d", c.err, c.size, c.minChunk, got, ok, c.want)
		}
	}
}

// TestManifestPutAccepted: Quay answers a manifest PUT with 202 Accepted
// (containers/image#381, containerd#3750); docker, skopeo and crane take any
// 2xx. A push by tag and one by digest both succeed, and what is stored is
// the manifest sent.
func TestManifestPutAccepted(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	reg.AddFault(registrytest.Fault{Kind: registrytest.SetStatus, Match: registrytest.MatchManifest(http.MethodPut, ""), Status: http.StatusAccepted})
	dst := openWriter(t, testPlugin(), reg, "quay", nil)
	for i, tag := range []string{"v1", ""} {
		img, err := registrytest.NewImage(1, 1000+i)
		if err != nil {
			t.Fatal(err)
		}
		pushImage(t, dst, img, tag)
		ref := tag
		if ref == "" {
			ref = img.Manifest.Digest.String()
		}
		raw, _, err := reg.GetManifest("quay", ref)
		if err != nil || !bytes.Equal(raw, img.ManifestRaw) {
			t.Fatalf("manifest %s: %v (stored %d bytes, sent %d)", ref, err, len(raw), len(img.ManifestRaw))
		}
	}
	accepted := 0
	for _, r := range reg.Requests() {
		if r.Method == http.MethodPut && strings.Contains(r.Path, "/manifests/") && r.Status == http.StatusAccepted {
			accepted++
		}
	}
	if accepted != 2 {
		t.Fatalf("%d manifest PUTs answered 202, want 2", accepted)
	}
}

// slowReader pauses after every `every` bytes: an upload that takes a
// while.
type slowReader struct {
	r     io.Reader
	every int
	pause time.Duration
	n     int
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > s.every-s.n%s.every {
		p = p[:s.every-s.n%s.every]
	}
	n, err := s.r.Read(p)
	s.n += n
	if n > 0 && s.n%s.every == 0 {
		time.Sleep(s.pause)
	}
	return n, err
}

// TestChunkedUploadOutlivesToken: a chunked upload that lasts longer than
// its bearer token (Docker Hub's live 300 s; here 600 ms, enforced by the
// proxy). A PATCH refused for an expired token cannot be sent again from a
// stream past the replay window, so the upload renews an old token between
// chunks with a GET of its session: no chunk is refused, and the token is
// fetched again only when old.
func TestChunkedUploadOutlivesToken(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthToken, TokenMaxAge: 600 * time.Millisecond})
	p := testPlugin()
	p.MonolithicMax, p.ChunkSize, p.ReplayWindow = 64<<10, 64<<10, 16<<10
	p.TokenRenewAge = 150 * time.Millisecond
	dst := openWriter(t, p, reg, "slow", nil)
	b, desc := randomBlob(t, 12*64<<10)
	start := time.Now()
	if err := dst.PutBlob(ctx, desc, onlyReader{&slowReader{r: bytes.NewReader(b), every: 64 << 10, pause: 100 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < time.Second {
		t.Fatalf("the upload took %v: too short to outlive a token", took)
	}
	for _, r := range reg.Requests() {
		if (r.Method == http.MethodPatch || r.Method == http.MethodPut) && r.Status == http.StatusUnauthorized {
			t.Fatalf("%s %s refused with 401: the token was not renewed in time", r.Method, r.Path)
		}
	}
	tokens, _ := reg.TokenRequests()
	if tokens < 3 || tokens > 12 {
		t.Fatalf("%d token requests for a ~1.2 s upload renewing after 150 ms: want a few, not one per request", tokens)
	}
	wantBlob(t, reg, "slow", desc)
}

// TestChunkAnswered200: a registry that answers upload PATCHes with 200,
// or 201 as ECR does (any 2xx is success for skopeo), gets the whole blob.
func TestChunkAnswered200(t *testing.T) {
	for _, status := range []int{http.StatusOK, http.StatusCreated} {
		reg := registrytest.Start(t, registrytest.Options{})
		reg.AddFault(registrytest.Fault{Kind: registrytest.SetStatus, Match: registrytest.MatchUploadPatch(), Status: status})
		p := testPlugin()
		p.MonolithicMax, p.ChunkSize = 64<<10, 64<<10
		dst := openWriter(t, p, reg, "ok2xx", nil)
		b, desc := randomBlob(t, 200<<10)
		if err := dst.PutBlob(context.Background(), desc, onlyReader{bytes.NewReader(b)}); err != nil {
			t.Fatalf("PATCHes answered %d: %v", status, err)
		}
		wantBlob(t, reg, "ok2xx", desc)
	}
}

func TestTokenAge(t *testing.T) {
	c := newTokenCache()
	if _, ok := c.age("r.example", "repository:a:pull"); ok {
		t.Fatal("an age without a token")
	}
	c.fetched["r.example repository:a:pull repository:b:pull"] = time.Now().Add(-time.Hour)
	c.fetched["r.example repository:c:pull"] = time.Now()
	c.fetched["other.example repository:a:pull"] = time.Now().Add(-2 * time.Hour)
	// Unknown key: the registry's oldest token.
	if age, ok := c.age("r.example", "repository:a:pull"); !ok || age < time.Hour || age > 2*time.Hour {
		t.Fatalf("fallback age %v %v, want about an hour", age, ok)
	}
	// A known key: its own.
	if age, ok := c.age("r.example", "repository:c:pull"); !ok || age > time.Minute {
		t.Fatalf("exact age %v %v", age, ok)
	}
}
