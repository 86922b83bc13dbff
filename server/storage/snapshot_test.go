package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// A tag is found right after its PutManifest returns, even when a reader
// re-reading index.json (its snapshot was due for a check, and the file
// had changed) ran alongside: the reader used to install what it read over
// the writer's newer snapshot, and the tag went missing for up to a second.
func TestReadAfterWriteWithConcurrentReader(t *testing.T) {
	st, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	cd := digest.FromBytes(cfg)
	tmp := filepath.Join(st.root, uploadsDirName, "cfg")
	if err := os.WriteFile(tmp, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.storeVerified(ctx, "app", cd, tmp, false); err != nil {
		t.Fatal(err)
	}
	misses := 0
	for i := range 600 {
		raw := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[],"annotations":{"i":"%d"}}`, cd, len(cfg), i))
		tag := fmt.Sprintf("t%d", i)
		r := st.repo("app")
		// The snapshot is due for a check, and index.json looks changed
		// (another process touched it).
		r.snapMu.RLock()
		if sn := r.snap; sn != nil {
			sn.checked.Store(time.Now().Add(-2 * revalidateEvery).UnixNano())
		}
		r.snapMu.RUnlock()
		when := time.Now().Add(time.Duration(i) * time.Millisecond)
		os.Chtimes(filepath.Join(r.dir, ocispec.ImageIndexFile), when, when)
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); st.Tags("app") }()
		go func() {
			defer wg.Done()
			if err := st.PutManifest(ctx, "app", PutManifest{Tags: []string{tag}, Digest: digest.FromBytes(raw), MediaType: ocispec.MediaTypeImageManifest, Raw: raw, Blobs: []digest.Digest{cd}}); err != nil {
				t.Error(err)
			}
		}()
		wg.Wait()
		if _, err := st.Resolve("app", tag); err != nil {
			misses++
		}
	}
	if misses > 0 {
		t.Fatalf("%d of 600 tags were not found right after their PutManifest returned", misses)
	}
}

// A blob a client found with HEAD (and so will not upload) is kept by a gc
// within its grace period, however long it sat unreferenced before: the
// push's manifest, which needs it, comes later.
func TestTouchedBlobSurvivesGC(t *testing.T) {
	st, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store := func(b []byte) digest.Digest {
		d := digest.FromBytes(b)
		tmp := filepath.Join(st.root, uploadsDirName, d.Encoded())
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := st.storeVerified(ctx, "app", d, tmp, false); err != nil {
			t.Fatal(err)
		}
		return d
	}
	touched, left := store([]byte("found with HEAD")), store([]byte("left alone"))
	time.Sleep(1200 * time.Millisecond) // older than the grace below
	st.TouchBlob("app", touched)
	if _, err := st.GC(ctx, GCOptions{Grace: time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.StatBlob("app", touched); err != nil {
		t.Fatalf("the blob found with HEAD was swept: %v", err)
	}
	if _, err := st.StatBlob("app", left); err == nil {
		t.Fatal("the orphan nobody asked for was kept: the grace did not apply")
	}
}
