package layout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
)

// Concurrent tags are written together: fewer index.json writes than tags,
// every tag present, a refused tag (its manifest missing) refused alone,
// and a caller whose context ends either gets its tag or an error, never an
// error with the tag written anyway.
func TestConcurrentTagsBatched(t *testing.T) {
	s := newStore(t)
	im := makeImage(t, 1, 1, 64)
	writeImage(t, s, im, "base")
	missing := newBlob(ocispec.MediaTypeImageManifest, []byte(`{"schemaVersion":2}`)).desc

	const n = 200
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	before := indexWrites.Load()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			desc := im.manifest.desc
			switch i % 10 {
			case 3:
				desc = missing
			case 7:
				// Ends while it waits, or before it starts.
				go func() { time.Sleep(time.Duration(i%4) * time.Millisecond); cancel() }()
			}
			<-start
			errs[i] = s.Tag(ctx, desc, fmt.Sprintf("t%d", i))
		}()
	}
	close(start)
	wg.Wait()
	writes := indexWrites.Load() - before

	tags, err := s.Tags(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, tag := range tags {
		have[tag] = true
	}
	for i := range n {
		tag := fmt.Sprintf("t%d", i)
		switch {
		case i%10 == 3:
			if !errors.Is(errs[i], core.ErrNotFound) || have[tag] {
				t.Errorf("%s (manifest missing): %v, present %v", tag, errs[i], have[tag])
			}
		case i%10 == 7:
			if (errs[i] == nil) != have[tag] || (errs[i] != nil && !errors.Is(errs[i], context.Canceled)) {
				t.Errorf("%s (cancelled): %v, present %v", tag, errs[i], have[tag])
			}
		default:
			if errs[i] != nil || !have[tag] {
				t.Errorf("%s: %v, present %v", tag, errs[i], have[tag])
			}
		}
	}
	written := 0
	for _, err := range errs {
		if err == nil {
			written++
		}
	}
	if writes > int64(written/2) {
		t.Errorf("%d index.json writes for %d concurrent tags written: not batched", writes, written)
	}
	t.Logf("%d writes for %d tags written", writes, written)

	// What was written is what a fresh reader parses.
	fresh, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	again, err := fresh.Tags(context.Background())
	if err != nil || len(again) != len(tags) {
		t.Fatalf("reopened: %d tags (%v), want %d", len(again), err, len(tags))
	}
}

// A name not found lists the first names the layout has, not thousands.
func TestResolveMissingNameListsAFew(t *testing.T) {
	s := newStore(t)
	im := makeImage(t, 2, 1, 64)
	writeImage(t, s, im, "t0")
	for i := 1; i < 15; i++ {
		if err := s.Tag(context.Background(), im.manifest.desc, fmt.Sprintf("t%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Resolve(context.Background(), "nope")
	if !errors.Is(err, core.ErrNotFound) || !strings.Contains(err.Error(), "t9, and 5 more)") || strings.Contains(err.Error(), "t10") {
		t.Fatalf("error: %v", err)
	}
}

// Referrers lists what index.json lists now: a referrer tagged after a
// first listing is in the next one, and one untagged leaves it.
func TestReferrersFollowIndex(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	im := makeImage(t, 3, 1, 64)
	writeImage(t, s, im, "v1")
	list := func() []digest.Digest {
		t.Helper()
		l, err := s.Referrers(ctx, im.manifest.desc.Digest, "")
		if err != nil {
			t.Fatal(err)
		}
		var out []digest.Digest
		for _, d := range l {
			out = append(out, d.Digest)
		}
		return out
	}
	if got := list(); len(got) != 0 {
		t.Fatalf("referrers before any: %v", got)
	}
	var refs []ocispec.Descriptor
	for i := range 2 {
		raw := []byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"a/sig","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%d},"annotations":{"n":"%d"}}`, im.manifest.desc.Digest, im.manifest.desc.Size, i))
		d := newBlob(ocispec.MediaTypeImageManifest, raw).desc
		if err := s.WriteBlobBytes(ctx, d, raw); err != nil {
			t.Fatal(err)
		}
		if err := s.Tag(ctx, d, fmt.Sprintf("sig%d", i)); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, d)
		if got := list(); len(got) != i+1 || got[i] != d.Digest {
			t.Fatalf("after tagging referrer %d: %v", i, got)
		}
	}
	if err := s.Untag(ctx, "sig0"); err != nil {
		t.Fatal(err)
	}
	// Asked again about one version, the answer comes from the referrers
	// gathered for every subject: the same.
	for range 3 {
		if got := list(); len(got) != 1 || got[0] != refs[1].Digest {
			t.Fatalf("after untagging the first: %v, want %s alone", got, refs[1].Digest)
		}
	}
	if l, err := s.Referrers(ctx, im.manifest.desc.Digest, "other/type"); err != nil || len(l) != 0 {
		t.Fatalf("filtered by another type: %v %v", l, err)
	}
}
