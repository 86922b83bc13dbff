package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/pluginapi"
)

// resumableUploads is a minimal upload endpoint with the resume semantics of
// the distribution spec (which docker-registry 2.8 lacks: it cancels a
// session whose bytes moved past its state token). It keeps the bytes of a
// PATCH cut short and reports them in the upload status.
type resumableUploads struct {
	mu       sync.Mutex
	data     bytes.Buffer
	cutPatch int   // cut the PATCH with this number (1-based)...
	cutAfter int64 // ...after this many bytes
	patches  int
	ranges   []string // Content-Range of every PATCH
	blobs    map[digest.Digest]bool
	statuses int
}

func (s *resumableUploads) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	const up = "/v2/r/blobs/uploads/"
	switch {
	case r.URL.Path == "/v2/":
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodPost && r.URL.Path == up:
		s.data.Reset()
		w.Header().Set("Location", up+"u1")
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPatch && r.URL.Path == up+"u1":
		s.ranges = append(s.ranges, r.Header.Get("Content-Range"))
		var start, end int64
		fmt.Sscanf(r.Header.Get("Content-Range"), "%d-%d", &start, &end)
		if start != int64(s.data.Len()) {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		s.patches++
		if s.patches == s.cutPatch {
			io.CopyN(&s.data, r.Body, s.cutAfter)
			panic(http.ErrAbortHandler)
		}
		io.Copy(&s.data, r.Body)
		w.Header().Set("Location", up+"u1")
		w.Header().Set("Range", fmt.Sprintf("0-%d", s.data.Len()-1))
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodGet && r.URL.Path == up+"u1":
		s.statuses++
		w.Header().Set("Location", up+"u1")
		w.Header().Set("Range", fmt.Sprintf("0-%d", s.data.Len()-1))
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut && r.URL.Path == up+"u1":
		io.Copy(&s.data, r.Body)
		d := digest.Digest(r.URL.Query().Get("digest"))
		if digest.FromBytes(s.data.Bytes()) != d {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"errors":[{"code":"DIGEST_INVALID","message":"digest did not match"}]}`)
			return
		}
		s.blobs[d] = true
		w.Header().Set("Docker-Content-Digest", d.String())
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodDelete:
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// resumeFixture serves uploads that keep partial bytes and cut the second
// PATCH (bytes 4000-7999) after 1500 bytes, and opens a writer on them
// uploading in 4000-byte chunks, keeping window bytes to resume.
func resumeFixture(t *testing.T, window int64) (*resumableUploads, *Writer) {
	t.Helper()
	srv := &resumableUploads{blobs: map[digest.Digest]bool{}, cutPatch: 2, cutAfter: 1500}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	p := testPlugin()
	p.MonolithicMax, p.ChunkSize, p.ReplayWindow = 1000, 4000, window
	e, err := p.Open(context.Background(), pluginapi.OpenRequest{
		Transport: "docker", Location: strings.TrimPrefix(ts.URL, "http://") + "/r", Mode: pluginapi.ModeWrite,
		Options: map[string]string{"tls-verify": "false"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return srv, e.(*Writer)
}

// TestChunkResumeMidPatch cuts a PATCH half-way on a registry that keeps
// partial bytes: the upload resumes from the registry's offset, resending
// only the missing part of the chunk from the replay window. With a window
// too small to reach back to that offset, the upload fails cleanly.
func TestChunkResumeMidPatch(t *testing.T) {
	srv, w := resumeFixture(t, 4000)

	b, desc := randomBlob(t, 10_000)
	reader := &countingSource{r: bytes.NewReader(b)}
	if err := w.PutBlob(context.Background(), desc, reader); err != nil {
		t.Fatal(err)
	}
	wantResumed(t, srv, desc)
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.statuses != 1 {
		t.Fatalf("%d status requests, want 1", srv.statuses)
	}
	if reader.total != len(b) {
		t.Fatalf("source read %d bytes, want each byte once (%d)", reader.total, len(b))
	}
}

type countingSource struct {
	r     io.Reader
	total int
}

func (c *countingSource) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.total += n
	return n, err
}

func TestChunkResumeWindowTooSmall(t *testing.T) {
	srv, w := resumeFixture(t, 1000)
	b, desc := randomBlob(t, 10_000)
	err := w.PutBlob(context.Background(), desc, bytes.NewReader(b))
	if err == nil || !strings.Contains(err.Error(), "outside the 1000 bytes kept") {
		t.Fatalf("got %v, want a cannot-resume error", err)
	}
	if srv.blobs[desc.Digest] {
		t.Fatal("blob committed")
	}
}

// A blob uploaded from a local file resumes from the file, whatever the
// replay window: the window that fails TestChunkResumeWindowTooSmall does not
// matter here, and no ring is held.
func TestChunkResumeFromFile(t *testing.T) {
	srv, w := resumeFixture(t, 1000)
	b, desc := randomBlob(t, 10_000)
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.PutBlobFile(context.Background(), desc, path); err != nil {
		t.Fatal(err)
	}
	wantResumed(t, srv, desc)
}

// wantResumed checks that the blob was committed after a PATCH cut
// half-way was resumed: the resumed PATCH starts a new chunk at the
// registry's offset.
func wantResumed(t *testing.T, srv *resumableUploads, desc ocispec.Descriptor) {
	t.Helper()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !srv.blobs[desc.Digest] {
		t.Fatal("blob not committed")
	}
	want := []string{"0-3999", "4000-7999", "5500-9499", "9500-9999"}
	if strings.Join(srv.ranges, " ") != strings.Join(want, " ") {
		t.Fatalf("PATCH ranges %q, want %q", srv.ranges, want)
	}
}

// A blob uploaded from a file goes in requests that carry the file itself
// when they end where it ends (net/http then sendfile()s it): the
// whole-blob PUT, and the last PATCH of a chunked upload, also when that
// PATCH is cut and resumed. Progress still ends at the blob's size.
func TestPutBlobFileSendsFromFile(t *testing.T) {
	ctx := context.Background()
	write := func(b []byte) string {
		path := filepath.Join(t.TempDir(), "blob")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	sent := func(f func() error) int64 {
		t.Helper()
		before := sentFromFile.Load()
		if err := f(); err != nil {
			t.Fatal(err)
		}
		return sentFromFile.Load() - before
	}

	srv, w := resumeFixture(t, 1000) // 1000-byte PUTs, 4000-byte PATCHes
	b, desc := randomBlob(t, 900)
	path := write(b)
	if n := sent(func() error { return w.PutBlobFile(ctx, desc, path) }); n != 1 || !srv.blobs[desc.Digest] {
		t.Fatalf("a whole-blob PUT: %d requests from the file, committed %v; want 1, true", n, srv.blobs[desc.Digest])
	}

	// The third PATCH (8000-9999, the last) is cut after 500 bytes and
	// resumed from the registry's offset, from the file again.
	srv, w = resumeFixture(t, 1000)
	srv.cutPatch = 3
	srv.cutAfter = 500
	b, desc = randomBlob(t, 10_000)
	path = write(b)
	var last int64
	if n := sent(func() error {
		return w.PutBlobFileProgress(ctx, desc, path, func(n int64) { last = n })
	}); n != 2 || last != desc.Size {
		t.Fatalf("a chunked upload whose last PATCH was resumed: %d requests from the file, progress ended at %d; want 2, %d", n, last, desc.Size)
	}
	want := "0-3999 4000-7999 8000-9999 8500-9999"
	if got := strings.Join(srv.ranges, " "); got != want || !srv.blobs[desc.Digest] {
		t.Fatalf("PATCH ranges %q, committed %v; want %q, true", got, srv.blobs[desc.Digest], want)
	}
}

// A request sent from the file reports progress while the registry takes
// it (read from the descriptor's offset), not only once it is done: the
// host's inactivity timeout watches those reports.
func TestPutBlobFileReportsProgressWhileSending(t *testing.T) {
	const size = 24 << 20
	b, desc := randomBlob(t, size)
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var got []byte
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost:
			w.Header().Set("Location", "/v2/r/blobs/uploads/u1")
			w.WriteHeader(http.StatusAccepted)
		case r.Method == http.MethodPut:
			buf := make([]byte, 1<<20)
			for {
				n, err := io.ReadFull(r.Body, buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
				time.Sleep(60 * time.Millisecond) // a slow registry
			}
			w.Header().Set("Docker-Content-Digest", digest.FromBytes(got).String())
			w.WriteHeader(http.StatusCreated)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer ts.Close()
	p := testPlugin()
	p.MonolithicMax = size
	e, err := p.Open(context.Background(), pluginapi.OpenRequest{
		Transport: "docker", Location: strings.TrimPrefix(ts.URL, "http://") + "/r", Mode: pluginapi.ModeWrite,
		Options: map[string]string{"tls-verify": "false"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(context.Background())
	var mu sync.Mutex
	var reports []int64
	err = e.(*Writer).PutBlobFileProgress(context.Background(), desc, path, func(n int64) {
		mu.Lock()
		reports = append(reports, n)
		mu.Unlock()
	})
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("upload: %v; the registry got %d bytes of %d", err, len(got), size)
	}
	mid := 0
	for _, n := range reports {
		if n > 0 && n < size {
			mid++
		}
	}
	if mid == 0 || reports[len(reports)-1] != size {
		t.Fatalf("progress %v: want reports while the bytes went, ending at %d", reports, size)
	}
}
