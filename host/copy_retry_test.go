package host_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/plugins/docker/registry"
	"github.com/stevedore-oci/stevedore/plugins/oci-layout/ocilayout"
)

// TestCopyRetries: a registry that keeps answering 503 past the transport's
// own retries fails the copy (unavailable) unless it is retried
// (--retry-times), and the retry then completes it.
func TestCopyRetries(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{})
	img := reg.Seed("src", "v1", 2, 1000)
	p := registry.New()
	p.MaxRetries, p.RetryBase, p.RetryMax = 1, time.Millisecond, 5*time.Millisecond
	h, err := host.New(host.Options{SearchPath: []string{t.TempDir()}, InProcess: []pluginapi.Plugin{ocilayout.New(), p}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	opts := host.CopyOptions{SrcOptions: map[string]string{"tls-verify": "false"}, RetryDelay: time.Millisecond}
	layer := img.Manifest.Digest // replaced below by a layer's
	for d := range img.Blobs {
		if d != img.Config.Digest {
			layer = d
			break
		}
	}
	fault := registrytest.Fault{Kind: registrytest.Respond, Status: http.StatusServiceUnavailable, Match: registrytest.MatchBlobGet(layer)}
	reg.AddFault(fault)
	_, err = h.Copy(ctx, "docker://"+reg.Addr+"/src:v1", "oci:"+t.TempDir()+":v1", opts)
	if !errors.Is(err, core.ErrUnavailable) {
		t.Fatalf("without retries: %v, want unavailable", err)
	}
	reg.ClearFaults()
	// As many 503s as one try of the copy takes (the request and the
	// transport's own retries), then the registry recovers.
	for _, r := range reg.Requests() {
		if r.Status == http.StatusServiceUnavailable {
			fault.Times++
		}
	}
	reg.AddFault(fault)
	var retried []int
	opts.Retries = 2
	opts.OnRetry = func(attempt int, _ time.Duration, _ error) { retried = append(retried, attempt) }
	res, err := h.Copy(ctx, "docker://"+reg.Addr+"/src:v1", "oci:"+t.TempDir()+":v1", opts)
	if err != nil || res.Descriptor.Digest != img.Manifest.Digest || len(retried) != 1 {
		t.Fatalf("with retries: %v %v, retried %v", res, err, retried)
	}
}
