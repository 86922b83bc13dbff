package dirtransport

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stevedore-oci/stevedore/core/layer/layertest"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// Writers of one dir: at once each commit whole: every commit succeeds
// (the check that the old directory may be replaced and the swap used to
// race: "directory not empty", a missing -old directory), the directory
// holds one whole image, and nothing is left beside it.
func TestConcurrentCommits(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	d := filepath.Join(tmp, "d")
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			img := layertest.NewImage(fmt.Sprint("w", i), layertest.Options{})
			e, err := New(nil).Open(ctx, pluginapi.OpenRequest{Transport: Transport, Location: d, Mode: pluginapi.ModeWrite})
			if err != nil {
				errs <- err
				return
			}
			dst := e.(*dest)
			defer dst.Close(ctx)
			for _, b := range img.Blobs() {
				if err := dst.PutBlob(ctx, b.Desc, bytes.NewReader(b.Data)); err != nil {
					errs <- err
					return
				}
			}
			if err := dst.PutManifest(ctx, img.Manifest.Desc, img.Manifest.Data, ""); err != nil {
				errs <- err
				return
			}
			if err := dst.Commit(ctx); err != nil {
				errs <- fmt.Errorf("writer %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	src, err := New(nil).Open(ctx, pluginapi.OpenRequest{Transport: Transport, Location: d, Mode: pluginapi.ModeRead})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close(ctx)
	top, err := src.(pluginapi.Source).Resolve(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := src.(pluginapi.Source).GetManifest(ctx, top)
	if err != nil || len(raw) == 0 {
		t.Fatalf("the directory's manifest: %v", err)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 1 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("beside the directory: %v", names)
	}
}
