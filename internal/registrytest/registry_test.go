package registrytest

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func get(t *testing.T, r *Registry, path string, auth bool, repo string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
	if auth {
		if err := r.Authorize(req, repo); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := r.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"plain", Options{}},
		{"tls-basic", Options{TLS: true, Auth: AuthBasic}},
		{"token", Options{Auth: AuthToken}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Start(t, tc.opts)
			img := r.Seed("a/b", "v1", 2, 1000)
			resp, _ := get(t, r, "/v2/a/b/manifests/v1", false, "")
			wantAnon := http.StatusOK
			if tc.opts.Auth != AuthNone {
				wantAnon = http.StatusUnauthorized
			}
			if resp.StatusCode != wantAnon {
				t.Fatalf("anonymous GET: %s, want %d", resp.Status, wantAnon)
			}
			if tc.opts.Auth == AuthToken && !strings.Contains(resp.Header.Get("Www-Authenticate"), `Bearer realm="http://127.0.0.1`) {
				t.Fatalf("challenge %q", resp.Header.Get("Www-Authenticate"))
			}
			resp, body := get(t, r, "/v2/a/b/blobs/"+img.Layers[0].Digest.String(), true, "a/b")
			if resp.StatusCode != http.StatusOK || digest.FromBytes(body) != img.Layers[0].Digest {
				t.Fatalf("GET blob: %s, digest %s", resp.Status, digest.FromBytes(body))
			}
			st := r.Stats()
			if st.BlobDownloadBytes != 1000 {
				t.Fatalf("download bytes %d, want 1000 (%+v)", st.BlobDownloadBytes, st)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	r := Start(t, Options{})
	img := r.Seed("x", "latest", 1, 5000)
	d := img.Layers[0].Digest
	path := "/v2/x/blobs/" + d.String()

	r.AddFault(Fault{Kind: FlipByte, Match: MatchBlobGet(d), At: 4000, Times: 1})
	resp, body := get(t, r, path, false, "")
	if resp.StatusCode != 200 || len(body) != 5000 || digest.FromBytes(body) == d {
		t.Fatalf("flip: status %d len %d", resp.StatusCode, len(body))
	}
	if body[4000] != img.Blobs[d][4000]^0xff {
		t.Fatal("wrong byte flipped")
	}
	// Times: 1 means the next GET is clean.
	if _, body = get(t, r, path, false, ""); digest.FromBytes(body) != d {
		t.Fatal("fault applied twice")
	}

	r.AddFault(Fault{Kind: Respond, Match: MatchBlobGet(d), Status: 503, Header: http.Header{"Retry-After": {"1"}}, Times: 1})
	if resp, _ = get(t, r, path, false, ""); resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("respond: %s", resp.Status)
	}

	r.AddFault(Fault{Kind: CutResponse, Match: MatchBlobGet(d), At: 100, Times: 1})
	req, _ := http.NewRequest(http.MethodGet, r.URL+path, nil)
	resp, err := r.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil || n != 100 {
		t.Fatalf("cut: read %d bytes, err %v; want 100 and an error", n, err)
	}

	reqs := r.Requests()
	if len(reqs) != 4 || reqs[3].Fault != CutResponse || reqs[3].BytesOut != 100 {
		t.Fatalf("requests %+v", reqs)
	}
}
