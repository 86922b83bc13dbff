package host_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/imagegen"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/plugins/docker/registry"
	"github.com/stevedore-oci/stevedore/plugins/oci-layout/ocilayout"
)

// A push from a layout hands each blob's file to the registry plugin, which
// uploads it itself: the copy still reports the bytes as they go, ending at
// each blob's size.
func TestCopyFromFileReportsProgress(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "src")
	s, err := layout.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	img, err := imagegen.Write(ctx, s, "v1", imagegen.Spec{Seed: 7, Layers: []imagegen.Layer{{Size: 3 << 20}, {Size: 100 << 10}}})
	if err != nil {
		t.Fatal(err)
	}
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
	if big := sent[img.Layers[0].Digest]; len(big) < 3 {
		t.Fatalf("a 3 MiB layer reported progress %v: want a count each MiB or so", big)
	}
}

// Without a progress listener the host asks for the plain upload from the
// file (which the docker plugin may hand to sendfile), and for the one
// reporting bytes only when someone shows them.
func TestCopyFromFileAsksProgressOnlyWhenShown(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "src")
	s, err := layout.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	img, err := imagegen.Write(ctx, s, "v1", imagegen.Spec{Seed: 8, Layers: []imagegen.Layer{{Size: 2 << 20}, {Size: 10 << 10}}})
	if err != nil {
		t.Fatal(err)
	}
	blobs := len(img.Layers) + 1 // and the config
	reg := registrytest.Start(t, registrytest.Options{})
	spy := spyOn(registry.New(), "")
	h, err := host.New(host.Options{SearchPath: []string{t.TempDir()}, InProcess: []pluginapi.Plugin{spy, ocilayout.New()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	insecure := map[string]string{"tls-verify": "false"}

	if _, err := h.Copy(ctx, "oci:"+dir+":v1", "docker://"+reg.Ref("quiet")+":v1", host.CopyOptions{DstOptions: insecure}); err != nil {
		t.Fatal(err)
	}
	if spy.n("PutBlobFile") != blobs || spy.n("PutBlobFileProgress") != 0 {
		t.Fatalf("no progress shown: %d plain uploads and %d reporting progress, want %d and 0", spy.n("PutBlobFile"), spy.n("PutBlobFileProgress"), blobs)
	}
	shown := host.CopyOptions{DstOptions: insecure, Progress: func(host.Event) {}}
	if _, err := h.Copy(ctx, "oci:"+dir+":v1", "docker://"+reg.Ref("shown")+":v1", shown); err != nil {
		t.Fatal(err)
	}
	if spy.n("PutBlobFile") != blobs || spy.n("PutBlobFileProgress") != blobs {
		t.Fatalf("progress shown: %d plain uploads and %d reporting progress in all, want %d and %d", spy.n("PutBlobFile"), spy.n("PutBlobFileProgress"), blobs, blobs)
	}
	for _, repo := range []string{"quiet", "shown"} {
		if raw, _, err := reg.GetManifest(repo, "v1"); err != nil || digest.FromBytes(raw) != img.Manifest.Digest {
			t.Fatalf("%s: manifest %v", repo, err)
		}
	}
}
