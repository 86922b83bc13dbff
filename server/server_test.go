package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/server"
)

func TestStoreLayoutAndDedup(t *testing.T) {
	ts, root := testServer(t, server.Options{AnonymousWrite: true})
	im := randomImage(t, "amd64", 2)
	pushImage(t, ts.URL, "team/app", "v1", im)
	// Mount into a second repository: no byte copy, a hard link.
	layer := im.layers[0].desc.Digest
	st, h, body := do(t, "POST", ts.URL+"/v2/other/blobs/uploads/?mount="+layer.String()+"&from=team/app", nil)
	if st != http.StatusCreated || h.Get("Location") != "/v2/other/blobs/"+layer.String() {
		t.Fatalf("mount: %d %v %s", st, h, body)
	}
	var idx ocispec.Index
	b, err := os.ReadFile(filepath.Join(root, "team/app/index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 1 || idx.Manifests[0].Annotations[ocispec.AnnotationRefName] != "v1" || idx.Manifests[0].Digest != im.manifest.desc.Digest {
		t.Fatalf("index.json = %s", b)
	}
	if _, err := os.Stat(filepath.Join(root, "team/app/oci-layout")); err != nil {
		t.Fatal(err)
	}
	ino := func(p string) uint64 {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	shared := ino(filepath.Join(root, ".blobs/sha256", layer.Encoded()))
	if a, b := ino(filepath.Join(root, "team/app/blobs/sha256", layer.Encoded())), ino(filepath.Join(root, "other/blobs/sha256", layer.Encoded())); a != shared || b != shared {
		t.Fatalf("blob not shared: inodes %d %d %d", shared, a, b)
	}
	// Catalog lists both; tags list the tag.
	st, _, body = do(t, "GET", ts.URL+"/v2/_catalog", nil)
	if st != 200 || !contains(string(body), `"other"`) || !contains(string(body), `"team/app"`) {
		t.Fatalf("catalog: %d %s", st, body)
	}
	// Retag then untag: the manifest stays reachable by digest.
	pushManifest(t, ts.URL, "team/app", "v2", im.manifest)
	if st, _, _ := do(t, "DELETE", ts.URL+"/v2/team/app/manifests/v1", nil); st != http.StatusAccepted {
		t.Fatalf("delete tag: %d", st)
	}
	if st, _, _ := do(t, "GET", ts.URL+"/v2/team/app/manifests/v1", nil); st != 404 {
		t.Fatalf("deleted tag still served: %d", st)
	}
	st, h, body = do(t, "GET", ts.URL+"/v2/team/app/manifests/"+im.manifest.desc.Digest.String(), nil)
	if st != 200 || !bytes.Equal(body, im.manifest.data) || h.Get("Docker-Content-Digest") != im.manifest.desc.Digest.String() || h.Get("Content-Type") != ocispec.MediaTypeImageManifest {
		t.Fatalf("get by digest: %d %v", st, h)
	}
}

func TestBlobRangeAndHead(t *testing.T) {
	ts, _ := testServer(t, server.Options{AnonymousWrite: true})
	b := newBlob("application/octet-stream", randomBytes(10000))
	pushBlob(t, ts.URL, "r", b)
	st, h, body := do(t, "GET", ts.URL+"/v2/r/blobs/"+b.desc.Digest.String(), nil, "Range", "bytes=100-199")
	if st != http.StatusPartialContent || !bytes.Equal(body, b.data[100:200]) || h.Get("Content-Range") != "bytes 100-199/10000" {
		t.Fatalf("range: %d %v", st, h)
	}
	st, _, _ = do(t, "GET", ts.URL+"/v2/r/blobs/"+b.desc.Digest.String(), nil, "Range", "bytes=20000-")
	if st != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("unsatisfiable range: %d", st)
	}
	st, h, _ = do(t, "HEAD", ts.URL+"/v2/r/blobs/"+b.desc.Digest.String(), nil)
	if st != 200 || h.Get("Content-Length") != "10000" || h.Get("Docker-Content-Digest") != b.desc.Digest.String() {
		t.Fatalf("head: %d %v", st, h)
	}
	if st, _, _ := do(t, "HEAD", ts.URL+"/v2/other/blobs/"+b.desc.Digest.String(), nil); st != 404 {
		t.Fatalf("blob visible in a repository it was not pushed to: %d", st)
	}
}

// Requests are sent straight to the handler so that paths reach it
// exactly as written (a client would clean them).
func TestAbusePathTraversal(t *testing.T) {
	root := t.TempDir()
	h, err := server.New(server.Options{Root: filepath.Join(root, "store"), AnonymousWrite: true})
	if err != nil {
		t.Fatal(err)
	}
	good := "sha256:" + strings.Repeat("a", 64)
	cases := []struct{ method, target string }{
		{"GET", "/v2/../../etc/manifests/latest"},
		{"GET", "/v2/%2e%2e/%2e%2e/etc/manifests/latest"},
		{"PUT", "/v2/%2e%2e/x/manifests/latest"},
		{"POST", "/v2/a/../../../x/blobs/uploads/"},
		{"POST", "/v2/%2E%2E%2Fx/blobs/uploads/"},
		{"GET", "/v2/a/blobs/sha256:..%2f..%2f..%2fetc%2fpasswd"},
		{"GET", "/v2/a/blobs/sha256:../../../../etc/passwd"},
		{"GET", "/v2/a/blobs/uploads/..%2f..%2fx"},
		{"PATCH", "/v2/a/blobs/uploads/../../.blobs"},
		{"GET", "/v2/a/manifests/sha256:" + strings.Repeat("g", 64)},
		{"GET", "/v2/.blobs/blobs/" + good},
		{"GET", "/v2/a/blobs/blobs/" + good},
		{"PUT", "/v2/a/blobs/manifests/v1"},
		{"GET", "/v2/a/referrers/sha256:..%2f.."},
		{"DELETE", "/v2/a//b/manifests/latest"},
		{"GET", "/v2/A/tags/list"},
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, "http://x"+c.target, strings.NewReader("{}"))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code < 400 || rec.Code >= 500 {
			t.Errorf("%s %s: status %d, want a 4xx refusal", c.method, c.target, rec.Code)
		}
	}
	// Nothing outside the store, nothing but the store's own directories in it.
	ents, _ := os.ReadDir(root)
	if len(ents) != 1 || ents[0].Name() != "store" {
		t.Errorf("files created beside the store: %v", ents)
	}
	ents, _ = os.ReadDir(filepath.Join(root, "store"))
	for _, e := range ents {
		if e.Name() != ".blobs" && e.Name() != ".uploads" {
			t.Errorf("unexpected entry in store: %s", e.Name())
		}
	}
}

func TestAbuseDigestsAndSizes(t *testing.T) {
	ts, root := testServer(t, server.Options{AnonymousWrite: true, MaxUploadSize: 1 << 20})
	data := randomBytes(1000)
	wrong := newBlob("", randomBytes(1000)).desc.Digest
	for _, d := range []string{"sha256:zz", "md5:abcd", "sha256:" + strings.Repeat("A", 64), "nonsense"} {
		st, _, body := do(t, "POST", ts.URL+"/v2/r/blobs/uploads/?digest="+d, data)
		if st != 400 || errCode(body) != "DIGEST_INVALID" {
			t.Errorf("POST digest %s: %d %s", d, st, body)
		}
	}
	// Content that does not match its digest never becomes visible.
	st, _, body := do(t, "POST", ts.URL+"/v2/r/blobs/uploads/?digest="+wrong.String(), data)
	if st != 400 || errCode(body) != "DIGEST_INVALID" {
		t.Fatalf("mismatching blob: %d %s", st, body)
	}
	if st, _, _ := do(t, "HEAD", ts.URL+"/v2/r/blobs/"+wrong.String(), nil); st != 404 {
		t.Fatalf("mismatching blob visible: %d", st)
	}
	if _, err := os.Stat(filepath.Join(root, ".blobs/sha256", wrong.Encoded())); err == nil {
		t.Fatal("mismatching blob stored")
	}
	// Over the upload cap.
	big := newBlob("", randomBytes(2<<20))
	st, _, body = do(t, "POST", ts.URL+"/v2/r/blobs/uploads/?digest="+big.desc.Digest.String(), big.data)
	if st != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized blob: %d %s", st, body)
	}
	// Oversized manifest.
	huge := append([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","annotations":{"x":"`), bytes.Repeat([]byte("a"), 4<<20)...)
	huge = append(huge, []byte(`"}}`)...)
	st, _, body = do(t, "PUT", ts.URL+"/v2/r/manifests/big", huge, "Content-Type", ocispec.MediaTypeImageManifest)
	if st != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized manifest: %d %s", st, body)
	}
	// A manifest whose digest reference does not match its body.
	im := randomImage(t, "amd64", 1)
	pushBlob(t, ts.URL, "r", im.config)
	pushBlob(t, ts.URL, "r", im.layers[0])
	st, _, body = do(t, "PUT", ts.URL+"/v2/r/manifests/"+wrong.String(), im.manifest.data, "Content-Type", ocispec.MediaTypeImageManifest)
	if st != 400 || errCode(body) != "DIGEST_INVALID" {
		t.Fatalf("manifest digest mismatch: %d %s", st, body)
	}
	// A manifest whose layer was never pushed.
	im2 := randomImage(t, "amd64", 1)
	pushBlob(t, ts.URL, "r", im2.config)
	st, _, body = do(t, "PUT", ts.URL+"/v2/r/manifests/missing", im2.manifest.data, "Content-Type", ocispec.MediaTypeImageManifest)
	if st != 400 || errCode(body) != "MANIFEST_BLOB_UNKNOWN" {
		t.Fatalf("manifest with missing layer: %d %s", st, body)
	}
	if st, _, _ := do(t, "GET", ts.URL+"/v2/r/manifests/"+im2.manifest.desc.Digest.String(), nil); st != 404 {
		t.Fatalf("refused manifest is served: %d", st)
	}
	// Invalid JSON and schema 1.
	st, _, body = do(t, "PUT", ts.URL+"/v2/r/manifests/bad", []byte("{not json"), "Content-Type", ocispec.MediaTypeImageManifest)
	if st != 400 || errCode(body) != "MANIFEST_INVALID" {
		t.Fatalf("invalid manifest: %d %s", st, body)
	}
	// Chunk out of order.
	_, h, _ := do(t, "POST", ts.URL+"/v2/r/blobs/uploads/", nil)
	loc := ts.URL + h.Get("Location")
	st, _, _ = do(t, "PATCH", loc, data[:100], "Content-Range", "100-199")
	if st != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("out-of-order chunk: %d", st)
	}
}

// A client announces more bytes than it sends and drops the connection: the
// bytes that arrived are kept, the client resumes from the offset the
// upload status reports, and only a verified blob becomes visible.
func TestAbuseLyingUploadAndResume(t *testing.T) {
	ts, _ := testServer(t, server.Options{AnonymousWrite: true})
	b := newBlob("", randomBytes(100000))
	_, h, _ := do(t, "POST", ts.URL+"/v2/r/blobs/uploads/", nil)
	loc := h.Get("Location")
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", loc, len(b.data))
	_, _ = conn.Write(b.data[:40000])
	time.Sleep(100 * time.Millisecond)
	_ = conn.Close()
	var off int64 = -1
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		st, h, _ := do(t, "GET", ts.URL+loc, nil)
		if st != http.StatusNoContent {
			t.Fatalf("upload status: %d", st)
		}
		fmt.Sscanf(h.Get("Range"), "0-%d", &off)
		if off == 39999 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if off != 39999 {
		t.Fatalf("after a dropped connection the upload is at 0-%d, want 0-39999", off)
	}
	// Committing now must fail: the content is incomplete.
	st, _, _ := do(t, "PUT", ts.URL+loc+"?digest="+b.desc.Digest.String(), nil)
	if st != 400 {
		t.Fatalf("commit of a partial upload: %d", st)
	}
	st, _, body := do(t, "PATCH", ts.URL+loc, b.data[40000:], "Content-Range", fmt.Sprintf("40000-%d", len(b.data)-1))
	if st != http.StatusAccepted {
		t.Fatalf("resume: %d %s", st, body)
	}
	st, _, body = do(t, "PUT", ts.URL+loc+"?digest="+b.desc.Digest.String(), nil)
	if st != http.StatusCreated {
		t.Fatalf("commit: %d %s", st, body)
	}
	st, _, got := do(t, "GET", ts.URL+"/v2/r/blobs/"+b.desc.Digest.String(), nil)
	if st != 200 || !bytes.Equal(got, b.data) {
		t.Fatalf("resumed blob: %d, %d bytes", st, len(got))
	}
}

// Upload sessions survive a restart of the server (new process, same root).
func TestUploadResumesAfterRestart(t *testing.T) {
	root := t.TempDir()
	ts1, _ := testServer(t, server.Options{Root: root, AnonymousWrite: true})
	b := newBlob("", randomBytes(5000))
	_, h, _ := do(t, "POST", ts1.URL+"/v2/r/blobs/uploads/", nil)
	loc := h.Get("Location")
	if st, _, _ := do(t, "PATCH", ts1.URL+loc, b.data[:3000], "Content-Range", "0-2999"); st != http.StatusAccepted {
		t.Fatalf("patch: %d", st)
	}
	ts1.Close()
	ts2, _ := testServer(t, server.Options{Root: root, AnonymousWrite: true})
	st, h, _ := do(t, "GET", ts2.URL+loc, nil)
	if st != http.StatusNoContent || h.Get("Range") != "0-2999" {
		t.Fatalf("status after restart: %d %q", st, h.Get("Range"))
	}
	if st, _, body := do(t, "PUT", ts2.URL+loc+"?digest="+b.desc.Digest.String(), b.data[3000:], "Content-Range", "3000-4999"); st != http.StatusCreated {
		t.Fatalf("finish after restart: %d %s", st, body)
	}
}

func TestConcurrentPushesOfOneBlob(t *testing.T) {
	ts, root := testServer(t, server.Options{AnonymousWrite: true})
	b := newBlob("", randomBytes(256<<10))
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan string, n)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			repo := "same"
			if i%2 == 1 {
				repo = fmt.Sprintf("r%d", i%10)
			}
			req, _ := http.NewRequest("POST", fmt.Sprintf("%s/v2/%s/blobs/uploads/?digest=%s", ts.URL, repo, b.desc.Digest), bytes.NewReader(b.data))
			resp, err := client.Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				errs <- fmt.Sprintf("push %d: status %d", i, resp.StatusCode)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	got, err := os.ReadFile(filepath.Join(root, ".blobs/sha256", b.desc.Digest.Encoded()))
	if err != nil || !bytes.Equal(got, b.data) {
		t.Fatalf("shared blob wrong after concurrent pushes: %v", err)
	}
	fi, _ := os.Stat(filepath.Join(root, ".blobs/sha256", b.desc.Digest.Encoded()))
	if nl := fi.Sys().(*syscall.Stat_t).Nlink; nl != 1+1+5 {
		t.Errorf("shared blob has %d links, want 7 (itself, same, r1..r9 odd)", nl)
	}
	ents, _ := os.ReadDir(filepath.Join(root, ".uploads"))
	if len(ents) != 0 {
		t.Errorf("%d upload leftovers", len(ents))
	}
}

func TestConcurrentTagPushes(t *testing.T) {
	ts, root := testServer(t, server.Options{AnonymousWrite: true})
	cfg := newBlob(ocispec.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux"}`))
	pushBlob(t, ts.URL, "r", cfg)
	const n = 40
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			m := newBlob(ocispec.MediaTypeImageManifest, []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[],"annotations":{"n":"%d"}}`, ocispec.MediaTypeImageManifest, cfg.desc.MediaType, cfg.desc.Digest, cfg.desc.Size, i)))
			tag := fmt.Sprintf("t%d", i)
			if i%4 == 0 {
				tag = "shared"
			}
			st, _, body := do(t, "PUT", fmt.Sprintf("%s/v2/r/manifests/%s", ts.URL, tag), m.data, "Content-Type", m.desc.MediaType)
			if st != http.StatusCreated {
				t.Errorf("push %d: %d %s", i, st, body)
			}
		}(i)
	}
	wg.Wait()
	var idx ocispec.Index
	b, _ := os.ReadFile(filepath.Join(root, "r/index.json"))
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	tags := map[string]int{}
	for _, e := range idx.Manifests {
		if tg := e.Annotations[ocispec.AnnotationRefName]; tg != "" {
			tags[tg]++
		}
	}
	// 30 distinct tags + "shared" once; the 9 manifests that lost "shared" stay untagged.
	if len(tags) != n-n/4+1 || tags["shared"] != 1 || len(idx.Manifests) != n {
		t.Fatalf("index after concurrent tag pushes: %d tags, %d entries, shared=%d", len(tags), len(idx.Manifests), tags["shared"])
	}
}

func TestReadOnlyHealthMetrics(t *testing.T) {
	ts, _ := testServer(t, server.Options{ReadOnly: true, AnonymousWrite: true})
	st, _, body := do(t, "POST", ts.URL+"/v2/r/blobs/uploads/", nil)
	if st != http.StatusMethodNotAllowed || errCode(body) != "UNSUPPORTED" {
		t.Fatalf("write to read-only: %d %s", st, body)
	}
	if st, _, body := do(t, "GET", ts.URL+"/healthz", nil); st != 200 || string(body) != "ok\n" {
		t.Fatalf("healthz: %d %q", st, body)
	}
	st, h, body := do(t, "GET", ts.URL+"/metrics", nil)
	if st != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") ||
		!contains(string(body), `stevedore_registry_requests_total{method="POST",route="upload",status="405"} 1`) ||
		!contains(string(body), "stevedore_registry_upload_sessions 0") {
		t.Fatalf("metrics: %d\n%s", st, body)
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:5000": true, "localhost:1": true, "[::1]:5000": true, "0.0.0.0:5000": false, ":5000": false, "10.0.0.1:80": false} {
		if got := server.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v", addr, got)
		}
	}
}
