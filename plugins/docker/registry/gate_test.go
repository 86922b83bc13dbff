package registry

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// blockingRT answers every request, holding the first until release closes.
type blockingRT struct {
	release chan struct{}
	calls   atomic.Int32
}

func (b *blockingRT) RoundTrip(req *http.Request) (*http.Response, error) {
	if b.calls.Add(1) == 1 {
		<-b.release
	}
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

// The first request to a registry over TLS goes alone; an upload does not
// hold the others back, and nothing is held over plain HTTP (no HTTP/2 to
// share a connection of).
func TestFirstRequestGate(t *testing.T) {
	for _, c := range []struct {
		scheme string
		upload bool
	}{{"https", false}, {"https", true}, {"http", false}} {
		upload, held := c.upload, c.scheme == "https" && !c.upload
		base := &blockingRT{release: make(chan struct{})}
		g := &firstRequestGate{base: base, ready: make(chan struct{})}
		first, _ := http.NewRequest(http.MethodHead, c.scheme+"://r.invalid/v2/", nil)
		if upload {
			first, _ = http.NewRequest(http.MethodPut, c.scheme+"://r.invalid/v2/x/blobs/uploads/1", strings.NewReader("bytes"))
		}
		done := make(chan struct{})
		go func() { g.RoundTrip(first); close(done) }()
		for base.calls.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		second := make(chan struct{})
		go func() {
			req, _ := http.NewRequest(http.MethodHead, c.scheme+"://r.invalid/v2/x/manifests/v1", nil)
			g.RoundTrip(req)
			close(second)
		}()
		select {
		case <-second:
			if held {
				t.Fatalf("%s: a second request went before the first had its answer", c.scheme)
			}
		case <-time.After(100 * time.Millisecond):
			if !held {
				t.Fatalf("%s (upload %v): a request waited for the first", c.scheme, upload)
			}
		}
		close(base.release)
		<-done
		<-second
	}
}
