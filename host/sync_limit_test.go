package host

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/ref"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// flight counts calls in flight and their peak.
type flight struct{ inFlight, peak atomic.Int32 }

// enter counts a call in; the function returned counts it out.
func (f *flight) enter() func() {
	n := f.inFlight.Add(1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	return func() { f.inFlight.Add(-1) }
}

// slowSource counts the Resolve calls in flight.
type slowSource struct {
	flight
	calls atomic.Int32
}

func (s *slowSource) Close(context.Context) error { return nil }
func (s *slowSource) Resolve(ctx context.Context, r string) (ocispec.Descriptor, error) {
	defer s.enter()()
	s.calls.Add(1)
	time.Sleep(10 * time.Millisecond)
	return ocispec.Descriptor{}, nil
}
func (s *slowSource) GetManifest(context.Context, ocispec.Descriptor) ([]byte, error) {
	return nil, nil
}
func (s *slowSource) GetBlob(context.Context, ocispec.Descriptor, int64) (io.ReadCloser, error) {
	return nil, nil
}

func TestSyncLimiter(t *testing.T) {
	src := &slowSource{}
	ep := &endpoint{Endpoint: src, Source: src, ep: ref.Endpoint{Transport: ref.Docker, Location: "reg.example/a"}, caps: map[string]bool{"source": true}}
	lim := newLimiter(RegistryLimit{MaxConcurrent: 2, RequestsPerSecond: 100, Burst: 1})
	le := limited(ep, lim)
	if _, ok := le.Endpoint.(*limitedEndpoint); !ok || le.caps["source"] != true {
		t.Fatalf("limited endpoint %+v", le)
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := le.Resolve(context.Background(), "x"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if p := src.peak.Load(); p > 2 || p < 1 {
		t.Errorf("peak concurrency %d, want at most 2", p)
	}
	// 20 calls at 100/s with a burst of 1: at least 190 ms.
	if d := time.Since(start); d < 190*time.Millisecond {
		t.Errorf("20 calls at 100/s took %s", d)
	}
	// Unsupported optional interfaces say so instead of panicking.
	if _, err := le.Endpoint.(*limitedEndpoint).ListTags(context.Background()); !errors.Is(err, core.ErrUnsupported) {
		t.Errorf("ListTags on a source without it: %v", err)
	}
	// A cancelled wait returns the context's error and the token.
	slow := newLimiter(RegistryLimit{RequestsPerSecond: 0.5, Burst: 1})
	if _, err := slow.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := slow.acquire(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled acquire: %v", err)
	}
	// No limit means no wrapper.
	if limited(ep, nil) != ep {
		t.Errorf("a nil limiter must not wrap")
	}
	// Capabilities the wrapper cannot pass on are dropped, not promised.
	odd := &endpoint{Endpoint: src, Source: src, ep: ep.ep, caps: map[string]bool{"source": true, "teleport": true}}
	if w := limited(odd, lim); w.caps["teleport"] || !w.caps["source"] {
		t.Errorf("wrapped caps %v", w.caps)
	}
	if len(wrapperCaps) != len(pluginapi.Capabilities(&limitedEndpoint{})) || !wrapperCaps[pluginapi.CapStageBlob] {
		t.Errorf("wrapper caps %v", wrapperCaps)
	}
	if registryOf(ref.Endpoint{Transport: ref.OCI, Location: "/x"}) != "" || registryOf(ep.ep) != "reg.example" {
		t.Errorf("registryOf")
	}
}

// Docker Hub goes by several names: one limiter, keyed however the sync
// file spells it, and the copy engine sees one registry (so it mounts).
func TestRegistryKeys(t *testing.T) {
	hub := func(loc string) ref.Endpoint { return ref.Endpoint{Transport: ref.Docker, Location: loc} }
	for _, loc := range []string{"docker.io/library/alpine", "registry-1.docker.io/library/alpine", "Registry-1.Docker.IO/x/y"} {
		if got := registryOf(hub(loc)); got != "docker.io" {
			t.Errorf("registryOf(%s) = %q, want docker.io", loc, got)
		}
	}
	if got := registryOf(hub("Reg.Example:5000/a")); got != "reg.example:5000" {
		t.Errorf("registryOf(Reg.Example:5000/a) = %q", got)
	}
	s := &syncRun{limits: keyedLimits(map[string]RegistryLimit{"registry-1.docker.io": {MaxConcurrent: 1}}), limiters: map[string]*limiter{}}
	a, b := s.limiterFor(hub("docker.io/library/alpine")), s.limiterFor(hub("registry-1.docker.io/library/busybox"))
	if a == nil || a != b {
		t.Errorf("Docker Hub's two spellings got limiters %p and %p, want one", a, b)
	}
	if s.limiterFor(hub("quay.io/x")) != nil {
		t.Errorf("a registry without a limit got a limiter")
	}
}

// slowFilePutter is a registry destination that uploads blobs from files,
// counting the uploads in flight.
type slowFilePutter struct{ flight }

func (s *slowFilePutter) Close(context.Context) error { return nil }
func (s *slowFilePutter) PutBlobFile(context.Context, ocispec.Descriptor, string) error {
	defer s.enter()()
	time.Sleep(5 * time.Millisecond)
	return nil
}
func (s *slowFilePutter) PutBlobFileProgress(ctx context.Context, desc ocispec.Descriptor, path string, _ func(int64)) error {
	return s.PutBlobFile(ctx, desc, path)
}

// An upload from a local file to a registry is an upload: it holds one of
// the registry's slots like PutBlob.
func TestSyncLimiterFileUploads(t *testing.T) {
	dst := &slowFilePutter{}
	ep := &endpoint{Endpoint: dst, ep: ref.Endpoint{Transport: ref.Docker, Location: "reg.example/a"},
		caps: map[string]bool{pluginapi.CapPutBlobFile: true, pluginapi.CapPutBlobFileProgress: true}}
	le := limited(ep, newLimiter(RegistryLimit{MaxConcurrent: 1}))
	if !le.caps[pluginapi.CapPutBlobFile] || !le.caps[pluginapi.CapPutBlobFileProgress] {
		t.Fatalf("limited endpoint dropped the file-put capabilities: %v", le.caps)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if i%2 == 0 {
				err = le.Endpoint.(pluginapi.FilePutter).PutBlobFile(context.Background(), ocispec.Descriptor{}, "/f")
			} else {
				err = le.Endpoint.(pluginapi.FileProgressPutter).PutBlobFileProgress(context.Background(), ocispec.Descriptor{}, "/f", nil)
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if p := dst.peak.Load(); p != 1 {
		t.Fatalf("peak uploads in flight %d with max-concurrent 1", p)
	}
}
