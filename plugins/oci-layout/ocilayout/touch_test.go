package ocilayout

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

// A writer that finds a blob present (and so will not write it) marks it
// as just used: a garbage collector sharing the layout (stevedore serve's
// gc, which spares blobs changed within its grace period) swept such
// blobs before the manifest needing them was tagged.
func TestHasBlobMarksBlobUsed(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "l")
	s, err := layout.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte("an old blob")
	desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := s.WriteBlob(ctx, desc, bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	p, _ := s.BlobPath(desc.Digest)
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	e := transporttest.OpenEndpoint(t, New(), TransportName, dir, pluginapi.ModeWrite)
	defer e.Close(ctx)
	ok, err := e.(pluginapi.Destination).HasBlob(ctx, desc)
	if err != nil || !ok {
		t.Fatalf("HasBlob = %v, %v", ok, err)
	}
	fi, err := os.Stat(p)
	if err != nil || time.Since(fi.ModTime()) > time.Minute {
		t.Fatalf("the blob a writer skips still looks an hour old (%v, %v)", fi.ModTime(), err)
	}
}
