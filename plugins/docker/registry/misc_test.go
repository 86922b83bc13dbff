package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

func TestRetries(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	img := reg.Seed("r", "v1", 1, 1000)
	p := testPlugin()
	src := openReader(t, p, reg, "r", nil)

	// 503 and 429 with Retry-After, then success.
	reg.AddFault(registrytest.Fault{Kind: registrytest.Respond, Match: registrytest.MatchManifest(http.MethodHead, "v1"), Times: 1,
		Status: http.StatusServiceUnavailable, Header: http.Header{"Retry-After": {"0"}}})
	reg.AddFault(registrytest.Fault{Kind: registrytest.Respond, Match: registrytest.MatchManifest(http.MethodHead, "v1"), Times: 1,
		Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"0"}}})
	reg.ResetStats()
	if d, err := src.Resolve(ctx, "v1"); err != nil || d.Digest != img.Manifest.Digest {
		t.Fatalf("resolve after 503, 429: %v", err)
	}
	if n := reg.Stats().ByMethod["HEAD"]; n != 3 {
		t.Fatalf("%d HEADs, want 3", n)
	}

	// A Retry-After longer than the plugin waits is the answer at once,
	// saying how long the registry asks to wait (it used to be waited
	// for, capped, until the host's timeouts hid the 429).
	reg.AddFault(registrytest.Fault{Kind: registrytest.Respond, Match: registrytest.MatchManifest(http.MethodGet, "v1"),
		Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"3600"}}})
	reg.AddFault(registrytest.Fault{Kind: registrytest.Respond, Match: registrytest.MatchManifest(http.MethodHead, "v1"),
		Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"3600"}}})
	reg.ResetStats()
	start := time.Now()
	_, err := src.Resolve(ctx, "v1")
	if err == nil || !strings.Contains(err.Error(), "HTTP 429") || !strings.Contains(err.Error(), "retry after 1h0m0s") || time.Since(start) > 5*time.Second {
		t.Fatalf("resolve with Retry-After: 3600: %v after %s, want the 429 at once", err, time.Since(start))
	}
	if n := reg.Stats().Requests; n != 1 {
		t.Fatalf("%d requests for a 429 asking to wait an hour, want 1", n)
	}
	reg.ClearFaults()

	// A persistent 500 gives up after MaxRetries retries.
	reg.AddFault(registrytest.Fault{Kind: registrytest.Respond, Match: registrytest.MatchBlobGet(img.Layers[0].Digest), Status: http.StatusInternalServerError})
	reg.ResetStats()
	_, err = src.GetBlob(ctx, img.Layers[0], 0)
	mustIs(t, err, core.ErrUnavailable)
	if n := reg.Stats().ByMethod["GET"]; n != p.MaxRetries+1 {
		t.Fatalf("%d GETs, want %d", n, p.MaxRetries+1)
	}
	reg.ClearFaults()

	// 404 is final: no retry.
	reg.ResetStats()
	_, err = src.Resolve(ctx, "missing")
	mustIs(t, err, core.ErrNotFound)
	if n := reg.Stats().Requests; n != 1 {
		t.Fatalf("%d requests for a 404, want 1", n)
	}
}

func TestRetryAfterParsing(t *testing.T) {
	future := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
	for _, tc := range []struct {
		v    string
		ok   bool
		more time.Duration
	}{{"2", true, 2 * time.Second}, {future, true, time.Second}, {"", false, 0}, {"soon", false, 0}} {
		d, ok := retryAfter(&http.Response{Header: http.Header{"Retry-After": {tc.v}}})
		if ok != tc.ok || d < tc.more {
			t.Errorf("Retry-After %q: %v %v", tc.v, d, ok)
		}
	}
	p := &retryPolicy{max: 3, base: time.Millisecond, maxWait: time.Millisecond, retryAfterMax: 10 * time.Second}
	if d, _ := p.Retry(0, &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"4"}}}, nil); d != 4*time.Second {
		t.Errorf("Retry-After not honoured: %v", d)
	}
	if d, _ := p.Retry(0, &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"11"}}}, nil); d >= 0 {
		t.Errorf("waits %v for a Retry-After over the most it waits", d)
	}
	if d, _ := p.Retry(3, &http.Response{StatusCode: 503, Header: http.Header{}}, nil); d >= 0 {
		t.Errorf("retried past the limit")
	}
	if d, _ := p.Retry(0, &http.Response{StatusCode: 400, Header: http.Header{}}, nil); d >= 0 {
		t.Errorf("retried a 400")
	}
}

func TestListTags(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	img := reg.Seed("r", "a", 1, 10)
	want := []string{"a"}
	for _, tag := range []string{"b", "c", "d", "e"} {
		if err := reg.PushManifest("r", tag, img.Manifest.MediaType, img.ManifestRaw); err != nil {
			t.Fatal(err)
		}
		want = append(want, tag)
	}
	tags, err := openReader(t, testPlugin(), reg, "r", nil).ListTags(ctx)
	slices.Sort(tags)
	if err != nil || !slices.Equal(tags, want) {
		t.Fatalf("tags %v, %v; want %v", tags, err, want)
	}
	// distribution reports NAME_UNKNOWN for a repository it does not know
	// (or one without tags): not found, saying so, never an empty list.
	tags, err = openReader(t, testPlugin(), reg, "nope", nil).ListTags(ctx)
	if !errors.Is(err, core.ErrNotFound) || tags != nil || !strings.Contains(err.Error(), "repository nope: list tags: the registry does not know the repository") {
		t.Fatalf("tags of an unknown repository: %v, %v; want a not-found error naming it", tags, err)
	}
}

// TestTagPagination follows Link headers. docker-registry 2.8 ignores n and
// answers with every tag at once, so a small fake serves the pages.
func TestTagPagination(t *testing.T) {
	all := []string{"a", "b", "c", "d", "e"}
	var queries []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		if r.URL.Path != "/v2/r/tags/list" {
			http.NotFound(w, r)
			return
		}
		queries = append(queries, r.URL.RawQuery)
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		start := 0
		if last := r.URL.Query().Get("last"); last != "" {
			start = slices.Index(all, last) + 1
		}
		end := min(start+n, len(all))
		if end < len(all) {
			w.Header().Set("Link", fmt.Sprintf(`</v2/r/tags/list?n=%d&last=%s>; rel="next"`, n, all[end-1]))
		}
		json.NewEncoder(w).Encode(map[string]any{"name": "r", "tags": all[start:end]})
	}))
	defer ts.Close()
	p := testPlugin()
	p.TagPageSize = 2
	e, err := p.Open(context.Background(), pluginapi.OpenRequest{Transport: "docker", Location: strings.TrimPrefix(ts.URL, "http://") + "/r",
		Mode: pluginapi.ModeRead, Options: map[string]string{"tls-verify": "false"}})
	if err != nil {
		t.Fatal(err)
	}
	tags, err := e.(*Reader).ListTags(context.Background())
	if err != nil || !slices.Equal(tags, all) {
		t.Fatalf("tags %v %v", tags, err)
	}
	if want := []string{"n=2", "last=b&n=2", "last=d&n=2"}; !slices.Equal(queries, want) {
		t.Fatalf("queries %q, want %q", queries, want)
	}
}

// TestReferrers pushes an artifact whose subject is an image to a registry
// without the referrers API (docker-registry 2.8): the push maintains the
// sha256-HEX tag index, and listing finds it through the fallback.
func TestReferrers(t *testing.T) {
	testReferrers(t, registrytest.Start(t, registrytest.Options{}))
}

// TestReferrersManifestPutAccepted: the same where every manifest PUT is
// answered 202, as Quay does; oras-go, which pushes a manifest with a
// subject and the tag index, wants 201.
func TestReferrersManifestPutAccepted(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	reg.AddFault(registrytest.Fault{Kind: registrytest.SetStatus, Match: registrytest.MatchManifest(http.MethodPut, ""), Status: http.StatusAccepted})
	testReferrers(t, reg)
}

func testReferrers(t *testing.T, reg *registrytest.Registry) {
	ctx := context.Background()
	img := reg.Seed("r", "v1", 1, 10)
	dst := openWriter(t, testPlugin(), reg, "r", nil)

	empty := []byte("{}")
	emptyDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: digest.FromBytes(empty), Size: 2}
	if err := dst.PutBlob(ctx, emptyDesc, strings.NewReader("{}")); err != nil {
		t.Fatal(err)
	}
	subject := img.Manifest
	raw, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     ocispec.MediaTypeImageManifest,
		"artifactType":  "application/vnd.example.sbom",
		"config":        emptyDesc,
		"layers":        []ocispec.Descriptor{emptyDesc},
		"subject":       subject,
	})
	if err != nil {
		t.Fatal(err)
	}
	art := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := dst.PutManifest(ctx, art, raw, ""); err != nil {
		t.Fatal(err)
	}
	src := openReader(t, testPlugin(), reg, "r", nil)
	refs, err := src.Referrers(ctx, subject.Digest, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || refs[0].Digest != art.Digest || refs[0].ArtifactType != "application/vnd.example.sbom" {
		t.Fatalf("referrers %+v", refs)
	}
	if refs, err := src.Referrers(ctx, subject.Digest, "application/other"); err != nil || len(refs) != 0 {
		t.Fatalf("filtered referrers %+v %v", refs, err)
	}
	tags, _ := src.ListTags(ctx)
	if !slices.Contains(tags, "sha256-"+subject.Digest.Encoded()) {
		t.Fatalf("no fallback tag in %v", tags)
	}
	// No referrers at all is an empty list, not an error.
	if refs, err := src.Referrers(ctx, img.Config.Digest, ""); err != nil || len(refs) != 0 {
		t.Fatalf("referrers of a digest without any: %+v %v", refs, err)
	}
}

// TestReferrersIndexEntryUnknown: docker-registry 2.x answers
// MANIFEST_BLOB_UNKNOWN to the push of a referrers tag index while another
// client writes one of its entries again (the proxy plays that answer
// once): the push is done again, reading the index anew, and succeeds. An
// entry the registry keeps refusing fails the push after a few attempts,
// naming the index.
func TestReferrersIndexEntryUnknown(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	img := reg.Seed("r", "v1", 1, 10)
	dst := openWriter(t, testPlugin(), reg, "r", nil)
	empty := []byte("{}")
	emptyDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: digest.FromBytes(empty), Size: 2}
	if err := dst.PutBlob(ctx, emptyDesc, bytes.NewReader(empty)); err != nil {
		t.Fatal(err)
	}
	artifact := func(kind string) (ocispec.Descriptor, []byte) {
		raw, err := json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageManifest, "artifactType": kind,
			"config": emptyDesc, "layers": []ocispec.Descriptor{emptyDesc}, "subject": img.Manifest,
		})
		if err != nil {
			t.Fatal(err)
		}
		return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(raw), Size: int64(len(raw))}, raw
	}
	indexTag := "sha256-" + img.Manifest.Digest.Encoded()
	unknown := func(times int) {
		reg.ClearFaults()
		reg.AddFault(registrytest.Fault{
			Kind: registrytest.Respond, Match: registrytest.MatchManifest(http.MethodPut, indexTag), Times: times,
			Status: http.StatusBadRequest, Header: http.Header{"Content-Type": {"application/json"}}, Drain: true,
			Body: `{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry","detail":"` + img.Manifest.Digest.String() + `"}]}`,
		})
	}
	indexPuts := func() int {
		n := 0
		for _, r := range reg.Requests() {
			if r.Method == http.MethodPut && strings.HasSuffix(r.Path, "/manifests/"+indexTag) {
				n++
			}
		}
		return n
	}

	sbom, sbomRaw := artifact("application/vnd.example.sbom")
	unknown(1)
	reg.ResetStats()
	if err := dst.PutManifest(ctx, sbom, sbomRaw, ""); err != nil {
		t.Fatalf("push with the index refused once: %v", err)
	}
	if n := indexPuts(); n != 2 {
		t.Errorf("%d index PUTs, want 2", n)
	}
	refs, err := openReader(t, testPlugin(), reg, "r", nil).Referrers(ctx, img.Manifest.Digest, "")
	if err != nil || len(refs) != 1 || refs[0].Digest != sbom.Digest {
		t.Fatalf("referrers %+v %v", refs, err)
	}

	sig, sigRaw := artifact("application/vnd.example.sig")
	unknown(0)
	reg.ResetStats()
	err = dst.PutManifest(ctx, sig, sigRaw, "")
	if err == nil || !strings.Contains(err.Error(), "referrers index "+indexTag) || !strings.Contains(err.Error(), "blob unknown") {
		t.Fatalf("push with the index refused every time: %v", err)
	}
	if n := indexPuts(); n != 1+referrersIndexRetries {
		t.Errorf("%d index PUTs, want %d", n, 1+referrersIndexRetries)
	}
}

// TestTLSSettings: a TLS registry without its CA is refused with a hint;
// tls-verify=false reaches it; a plain HTTP registry needs tls-verify=false.
func TestTLSSettings(t *testing.T) {
	ctx := context.Background()
	tlsReg := registrytest.Start(t, registrytest.Options{TLS: true})
	tlsReg.Seed("r", "v1", 1, 10)
	p := testPlugin()
	_, err := openReader(t, p, tlsReg, "r", map[string]string{"cert-dir": ""}).Resolve(ctx, "v1")
	mustIs(t, err, core.ErrInvalid)
	if !strings.Contains(err.Error(), "not trusted: add its CA with --cert-dir or /etc/containers/certs.d/HOST/ca.crt, or use --tls-verify=false)") {
		t.Fatalf("untrusted CA error: %v", err)
	}
	// The hint names the flags of the side the flag-prefix option says
	// (copy's source: --src-cert-dir, --src-tls-verify).
	_, err = openReader(t, p, tlsReg, "r", map[string]string{"cert-dir": "", "flag-prefix": "src-"}).Resolve(ctx, "v1")
	if !strings.Contains(err.Error(), "not trusted: add its CA with --src-cert-dir or /etc/containers/certs.d/HOST/ca.crt, or use --src-tls-verify=false)") {
		t.Fatalf("untrusted CA error with flag-prefix src-: %v", err)
	}
	// A cert-dir that does not exist (misspelt) is named as such.
	missing := filepath.Join(t.TempDir(), "no-such-certs")
	_, err = openReader(t, p, tlsReg, "r", map[string]string{"cert-dir": missing, "flag-prefix": "dest-"}).Resolve(ctx, "v1")
	mustIs(t, err, core.ErrInvalid)
	if !strings.Contains(err.Error(), "(--dest-cert-dir "+missing+" does not exist; the registry's certificate is not trusted") {
		t.Fatalf("untrusted CA error with a missing cert-dir: %v", err)
	}
	if _, err := openReader(t, p, tlsReg, "r", map[string]string{"cert-dir": "", "tls-verify": "false"}).Resolve(ctx, "v1"); err != nil {
		t.Fatalf("tls-verify=false on TLS: %v", err)
	}

	plain := registrytest.Start(t, registrytest.Options{})
	plain.Seed("r", "v1", 1, 10)
	_, err = openReader(t, p, plain, "r", map[string]string{"tls-verify": ""}).Resolve(ctx, "v1")
	if err == nil || !strings.Contains(err.Error(), "speaks plain HTTP: use --tls-verify=false): invalid") {
		t.Fatalf("plain HTTP with verification: %v", err)
	}
	mustIs(t, err, core.ErrInvalid)
	_, err = openReader(t, p, plain, "r", map[string]string{"tls-verify": "", "flag-prefix": "dest-"}).Resolve(ctx, "v1")
	if err == nil || !strings.Contains(err.Error(), "speaks plain HTTP: use --dest-tls-verify=false): invalid") || strings.Count(err.Error(), "plain HTTP") != 1 {
		t.Fatalf("plain HTTP with flag-prefix dest-: %v", err)
	}

	// With tls-verify=false, a server that answers the TLS hello in
	// plain HTTP is known to speak it: the first request over HTTP is the
	// one asked for, not a second probe.
	plain.ResetStats()
	if _, err := openReader(t, New(), plain, "r", map[string]string{"tls-verify": "false"}).Resolve(ctx, "v1"); err != nil {
		t.Fatalf("plain HTTP, tls-verify=false: %v", err)
	}
	var got []string
	for _, r := range plain.Requests() {
		got = append(got, r.Method+" "+r.Path)
	}
	if want := []string{"HEAD /v2/r/manifests/v1"}; !slices.Equal(got, want) {
		t.Fatalf("requests over plain HTTP: %q, want %q", got, want)
	}
}

func TestOpenAndOptions(t *testing.T) {
	p := New()
	for _, tc := range []struct {
		loc     string
		opts    map[string]string
		wantErr string
	}{
		{"docker.io/library/alpine", nil, ""},
		{"127.0.0.1:5000/a/b", map[string]string{"creds": "u:p:with:colons", "tls-verify": "false", "x-unknown": "ignored"}, ""},
		{"alpine", nil, `docker location "alpine" names neither a registry`},
		{"docker.io/library/alpine:3", nil, "tag"},
		{"example.com/a", map[string]string{"creds": "nopassword"}, "USER:PASSWORD"},
		{"example.com/a", map[string]string{"tls-verify": "maybe"}, "boolean"},
		{"example.com/a", map[string]string{"creds": "u:p", "registry-token": "t"}, "exclusive"},
		{"example.com/a", map[string]string{"creds": "u:p", "no-creds": "true"}, "conflicts"},
		{"example.com/a", map[string]string{"cert-dir": "/nonexistent-dir"}, ""},
	} {
		e, err := p.Open(context.Background(), pluginapi.OpenRequest{Transport: "docker", Location: tc.loc, Mode: pluginapi.ModeRead, Options: tc.opts})
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("%s %v: %v", tc.loc, tc.opts, err)
				continue
			}
			e.Close(context.Background())
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s %v: %v, want %q", tc.loc, tc.opts, err, tc.wantErr)
		}
	}
	name, host, repo, err := SplitLocation("docker.io/library/alpine")
	if err != nil || name != "docker.io" || host != "registry-1.docker.io" || repo != "library/alpine" {
		t.Fatalf("SplitLocation: %s %s %s %v", name, host, repo, err)
	}
	e, _ := p.Open(context.Background(), pluginapi.OpenRequest{Transport: "docker", Location: "example.com/a", Mode: pluginapi.ModeWrite})
	caps := pluginapi.Capabilities(e)
	for _, c := range []string{pluginapi.CapSource, pluginapi.CapDest, pluginapi.CapMount, pluginapi.CapDelete, pluginapi.CapListTags, pluginapi.CapReferrers} {
		if !slices.Contains(caps, c) {
			t.Errorf("write endpoint lacks %s (%v)", c, caps)
		}
	}
	r, _ := p.Open(context.Background(), pluginapi.OpenRequest{Transport: "docker", Location: "example.com/a", Mode: pluginapi.ModeRead})
	if caps := pluginapi.Capabilities(r); slices.Contains(caps, pluginapi.CapDest) || slices.Contains(caps, pluginapi.CapDelete) {
		t.Errorf("read endpoint advertises writes: %v", caps)
	}
	_ = fmt.Sprint
}

// TestCertsDAndClientCert: without cert-dir the CA and the client
// certificate come from certs.d/HOST (docker's layout), and a registry that
// requires a client certificate gets it.
func TestCertsDAndClientCert(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{TLS: true, ClientCert: true})
	reg.Seed("r", "v1", 1, 10)
	p := testPlugin()
	caOnly := t.TempDir()
	if b, err := os.ReadFile(reg.CAFile); err != nil || os.WriteFile(filepath.Join(caOnly, "ca.crt"), b, 0o644) != nil {
		t.Fatal(err)
	}
	_, err := openReader(t, p, reg, "r", map[string]string{"cert-dir": caOnly}).Resolve(ctx, "v1")
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "wants a client certificate") {
		t.Fatalf("without a client certificate: %v", err)
	}
	root := t.TempDir()
	if err := os.CopyFS(filepath.Join(root, reg.Addr), os.DirFS(reg.CertDir)); err != nil {
		t.Fatal(err)
	}
	saved := certsDRoots
	certsDRoots = []string{filepath.Join(t.TempDir(), "none"), root}
	defer func() { certsDRoots = saved }()
	if _, err := openReader(t, p, reg, "r", map[string]string{"cert-dir": ""}).Resolve(ctx, "v1"); err != nil {
		t.Fatalf("with certs.d/%s: %v", reg.Addr, err)
	}
	// A lone key without its certificate is a configuration error.
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "x.key"), []byte("k"), 0o600)
	_, err = p.Open(ctx, pluginapi.OpenRequest{Transport: "docker", Location: reg.Ref("r"), Mode: pluginapi.ModeRead, Options: map[string]string{"cert-dir": bad}})
	mustIs(t, err, core.ErrInvalid)
}

// An error quoting a URL (a blob redirected to storage with a presigned
// URL, an upload session's state) is reported without the URL's query;
// errors.Is still sees what it wraps.
func TestErrorsDropURLQueries(t *testing.T) {
	e := &endpoint{name: "r.example", repo: "app", creds: &credResolver{}}
	cause := fmt.Errorf(`GET "https://bucket.s3.example/blobs/x?X-Amz-Credential=AKIA/1&X-Amz-Signature=deadbeef": connection reset: %w`, core.ErrUnavailable)
	err := e.fail("get blob", cause)
	if strings.Contains(err.Error(), "Signature") || strings.Contains(err.Error(), "AKIA") || !strings.Contains(err.Error(), `"https://bucket.s3.example/blobs/x?..."`) {
		t.Fatalf("error %q", err)
	}
	mustIs(t, err, core.ErrUnavailable)
	if plain := e.fail("resolve v1", fmt.Errorf("manifest v1 not found: %w", core.ErrNotFound)); plain.Error() != "registry r.example, repository app: resolve v1: manifest v1 not found: not found" {
		t.Fatalf("error without a URL changed: %q", plain)
	}
}

// A local file's failure is not the registry's: a full disk under a blob
// being fetched into a file was retried as "unavailable" (syscall.Errno
// passes for a net.Error), while a broken connection still is unavailable.
func TestLocalFileErrorsAreNotUnavailable(t *testing.T) {
	e := &endpoint{name: "r.example", repo: "app", creds: &credResolver{}}
	full := e.fail("get blob into /l/tmp", &fs.PathError{Op: "write", Path: "/l/tmp", Err: syscall.ENOSPC})
	if errors.Is(full, core.ErrUnavailable) || !strings.Contains(full.Error(), "no space left on device") {
		t.Fatalf("full disk: %v", full)
	}
	reset := e.fail("get blob", &net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}})
	mustIs(t, reset, core.ErrUnavailable)
}

// A manifest fetched by tag whose bytes do not hash to the digest the
// registry names (Docker-Content-Digest) was changed in transit: a digest
// error, not an image with another digest (whose later fetch by digest
// then failed as "not found"). crane checks the same.
func TestManifestByTagChecksRegistryDigest(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	img := reg.Seed("r", "v1", 1, 1000)
	src := openReader(t, testPlugin(), reg, "r", nil)
	reg.AddFault(registrytest.Fault{Kind: registrytest.FlipByte, Match: registrytest.MatchManifest(http.MethodGet, "v1"), At: 10})
	_, _, err := src.ResolveManifest(ctx, "v1")
	mustIs(t, err, core.ErrDigestMismatch)
	if !strings.Contains(err.Error(), img.Manifest.Digest.String()) {
		t.Fatalf("%v: want the digest the registry named", err)
	}
	reg.ClearFaults()
	if d, _, err := src.ResolveManifest(ctx, "v1"); err != nil || d.Digest != img.Manifest.Digest {
		t.Fatalf("untouched: %v %v", d.Digest, err)
	}
}
