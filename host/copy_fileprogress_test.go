package host_test

import (
	"context"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/imagegen"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
)

// A push from a layout hands each blob's file to the registry plugin, which
// uploads it itself: the copy still reports the bytes as they go, ending at
// each blob's size (how often while they go is the plugin's: see the docker
// plugin's TestPutBlobFileReportsProgressWhileSending).
func TestCopyFromFileReportsProgress(t *testing.T) {
	ctx := context.Background()
	dir, _, img := sourceLayout(t, imagegen.Spec{Seed: 7, Layers: []imagegen.Layer{{Size: 3 << 20}, {Size: 100 << 10}}})
	reg := registrytest.Start(t, registrytest.Options{})
	h := newSyncHost(t)

	var mu sync.Mutex
	sent := map[digest.Digest][]int64{}
	linked := map[digest.Digest]bool{}
	opts := host.CopyOptions{
		DstOptions: map[string]string{"tls-verify": "false"},
		Progress: func(e host.Event) {
			mu.Lock()
			defer mu.Unlock()
			switch e.Kind {
			case host.BlobProgress:
				sent[e.Desc.Digest] = append(sent[e.Desc.Digest], e.Bytes)
			case host.BlobLinked:
				linked[e.Desc.Digest] = true
			}
		},
	}
	if _, err := h.Copy(ctx, "oci:"+dir+":v1", "docker://"+reg.Ref("r")+":v1", opts); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, l := range img.Layers {
		if !linked[l.Digest] {
			t.Fatalf("layer %s was not uploaded from its file (events: %v)", l.Digest, linked)
		}
		got := sent[l.Digest]
		if len(got) == 0 || got[len(got)-1] != l.Size {
			t.Fatalf("layer %s of %d bytes: progress %v, want it to end at the size", l.Digest, l.Size, got)
		}
		for _, n := range got {
			if n < 0 || n > l.Size {
				t.Fatalf("layer %s of %d bytes: progress %v out of range", l.Digest, l.Size, got)
			}
		}
	}
}
