package host_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/core/ref"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
)

// goroutinesIn counts the goroutines whose stack holds fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte(fn)) {
			count++
		}
	}
	return count
}

// The tags of a repository are compared ahead of the copies, but no further
// than the comparison slots: an image found to differ waits for a copy slot
// in its place among them. Each waiting image is a goroutine with its stack
// (some 20 KiB once it has resolved both sides), and when the comparisons
// ran on regardless, a mirror of thousands of images held them all while
// the first ones copied: the host's RSS grew with the mirror (62 MiB at 2000
// images between two registries, 30 MiB now).
func TestSyncComparesNoFurtherAheadThanItsSlots(t *testing.T) {
	const tags = 40
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "src")
	s, err := layout.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	for i := range tags {
		img, err := registrytest.NewImageFromLayers(ocispec.MediaTypeImageLayer, []byte(fmt.Sprintf("layer %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		for d, b := range img.Blobs {
			mustWrite(t, s, ocispec.Descriptor{Digest: d, Size: int64(len(b))}, b)
		}
		mustWrite(t, s, img.Manifest, img.ManifestRaw)
		if err := s.Tag(ctx, img.Manifest, fmt.Sprintf("t%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	h := newSyncHost(t)
	job := host.SyncJob{Kind: host.SyncRepository,
		Source: ref.Endpoint{Transport: ref.OCI, Location: src},
		Target: ref.Endpoint{Transport: ref.OCI, Location: filepath.Join(t.TempDir(), "dst")}}

	// With one copy slot, the first image holds it until its report
	// returns: meanwhile the other tags are compared and wait for it.
	const parallel, slots = 1, 4 // slots: parallel*checksPerCopy
	const waitFn = "host.(*imageSlot).toCopy"
	waiting, first := 0, true
	opts := host.SyncOptions{Parallel: parallel, OnImage: func(r host.SyncImageResult) {
		if !first {
			return
		}
		first = false
		// Every comparison slot fills with a waiting image...
		deadline := time.Now().Add(10 * time.Second)
		for goroutinesIn(waitFn) < slots && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		// ...and then no more tags are compared (before the fix, the
		// other 35 were within milliseconds).
		time.Sleep(200 * time.Millisecond)
		waiting = goroutinesIn(waitFn)
	}}
	rep, err := h.Sync(ctx, []host.SyncJob{job}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Copied != tags {
		t.Fatalf("copied %d of %d: %v", rep.Copied, tags, actions(rep))
	}
	if waiting != slots {
		t.Fatalf("%d images waited for a copy slot while the first one held it, want %d (the comparison slots)", waiting, slots)
	}
}
