package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/vbauerster/mpb/v8"

	"github.com/stevedore-oci/stevedore/host"
)

// Each blob's bar ends saying what happened to it: "done" after a
// transfer, "exists" when the destination had it, "mounted" when it was
// mounted; the summary line counts them.
func TestBarsSayWhatHappened(t *testing.T) {
	out, err := os.Create(filepath.Join(t.TempDir(), "bars"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	blob := func(s string) ocispec.Descriptor {
		return ocispec.Descriptor{Digest: digest.FromString(s), Size: int64(len(s))}
	}
	copied, held, mounted := blob("copied"), blob("held"), blob("mounted!")
	p := newBars(out, mpb.WithAutoRefresh()) // a file is no terminal: draw anyway
	for _, e := range []host.Event{
		{Kind: host.BlobStart, Desc: copied},
		{Kind: host.BlobProgress, Desc: copied, Bytes: 3},
		{Kind: host.BlobDone, Desc: copied},
		{Kind: host.BlobSkipped, Desc: held},
		{Kind: host.BlobMounted, Desc: mounted},
	} {
		p.event(e)
	}
	p.finish(&host.CopyResult{BlobsCopied: 1, BlobsSkipped: 1, BlobsMounted: 1, BytesCopied: copied.Size, Manifests: 1}, nil)
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for d, want := range map[digest.Digest]string{copied.Digest: "done", held.Digest: "exists", mounted.Digest: "mounted"} {
		last := ""
		for _, line := range strings.Split(strings.ReplaceAll(text, "\r", "\n"), "\n") {
			if strings.Contains(line, d.Encoded()[:12]) {
				last = line
			}
		}
		if !strings.HasSuffix(strings.TrimSpace(last), want) {
			t.Errorf("bar of %s ends %q, want %q", d.Encoded()[:12], last, want)
		}
	}
	if !strings.Contains(text, "copied 1 blobs (6 B), skipped 1, mounted 1, 1 manifests") {
		t.Errorf("no summary line in %q", text)
	}
}
