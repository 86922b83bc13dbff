package server_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stevedore-oci/stevedore/server"
)

// discardWriter is a minimal ResponseWriter so the benchmarks measure the
// handler, not the recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

func benchHandler(b *testing.B) (http.Handler, image) {
	t := &testing.T{}
	h, err := server.New(server.Options{Root: b.TempDir(), AnonymousWrite: true})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(h)
	b.Cleanup(ts.Close)
	im := randomImage(t, "amd64", 2)
	pushImage(t, ts.URL, "bench/app", "latest", im)
	if t.Failed() {
		b.Fatal("setup push failed")
	}
	return h, im
}

func BenchmarkManifestGetByTag(b *testing.B) {
	h, _ := benchHandler(b)
	req := httptest.NewRequest("GET", "/v2/bench/app/manifests/latest", nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, req)
		}
	})
}

func BenchmarkBlobHead(b *testing.B) {
	h, im := benchHandler(b)
	req := httptest.NewRequest("HEAD", "/v2/bench/app/blobs/"+im.layers[0].desc.Digest.String(), nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			clear(w.h)
			h.ServeHTTP(w, req)
		}
	})
}
