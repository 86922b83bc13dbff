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

// The first request to a registry goes alone; an upload does not hold the
// others back.
func TestFirstRequestGate(t *testing.T) {
	for _, upload := range []bool{false, true} {
		base := &blockingRT{release: make(chan struct{})}
		g := &firstRequestGate{base: base, ready: make(chan struct{})}
		first, _ := http.NewRequest(http.MethodHead, "http://r.invalid/v2/", nil)
		if upload {
			first, _ = http.NewRequest(http.MethodPut, "http://r.invalid/v2/x/blobs/uploads/1", strings.NewReader("bytes"))
		}
		done := make(chan struct{})
		go func() { g.RoundTrip(first); close(done) }()
		for base.calls.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		second := make(chan struct{})
		go func() {
			req, _ := http.NewRequest(http.MethodHead, "http://r.invalid/v2/x/manifests/v1", nil)
			g.RoundTrip(req)
			close(second)
		}()
		select {
		case <-second:
			if !upload {
				t.Fatal("a second request went before the first had its answer")
			}
		case <-time.After(100 * time.Millisecond):
			if upload {
				t.Fatal("a request waited for an upload's bytes")
			}
		}
		close(base.release)
		<-done
		<-second
	}
}
