package archive

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stevedore-oci/stevedore/core/layer/layertest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

// Two writers of one archive at once: each carries the archive's images
// over into its new one, so the second waits for the first to commit and
// then adds to what it wrote; no image is lost (the last rename used to
// win). Nothing is left beside the archive but the archive.
func TestConcurrentWritersKeepEveryImage(t *testing.T) {
	for _, transport := range []string{OCIArchive, DockerArchive} {
		t.Run(transport, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			path := filepath.Join(dir, "x.tar")
			refs := map[string]string{OCIArchive: "first", DockerArchive: "app:first"}
			second := map[string]string{OCIArchive: "second", DockerArchive: "app:second"}
			put := func(e pluginapi.Endpoint, img layertest.Image, ref string) {
				t.Helper()
				d := e.(pluginapi.Destination)
				for _, b := range img.Blobs() {
					if err := d.PutBlob(ctx, b.Desc, bytes.NewReader(b.Data)); err != nil {
						t.Fatal(err)
					}
				}
				if err := d.PutManifest(ctx, img.Manifest.Desc, img.Manifest.Data, ref); err != nil {
					t.Fatal(err)
				}
			}
			a := transporttest.OpenEndpoint(t, New(nil), transport, path, pluginapi.ModeWrite)
			put(a, layertest.NewImage("one", layertest.Options{}), refs[transport])

			opened := make(chan pluginapi.Endpoint)
			go func() {
				b, err := New(nil).Open(ctx, pluginapi.OpenRequest{Transport: transport, Location: path, Mode: pluginapi.ModeWrite})
				if err != nil {
					t.Error(err)
				}
				opened <- b
			}()
			select {
			case <-opened:
				t.Fatal("a second writer opened the archive while the first held it")
			case <-time.After(200 * time.Millisecond):
			}
			transporttest.CommitClose(t, a)
			b := <-opened
			if b == nil {
				return
			}
			put(b, layertest.NewImage("two", layertest.Options{}), second[transport])
			transporttest.CommitClose(t, b)

			src := transporttest.OpenEndpoint(t, New(nil), transport, path, pluginapi.ModeRead)
			tags, err := src.(pluginapi.TagLister).ListTags(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sort.Strings(tags)
			if got := strings.Join(tags, " "); got != refs[transport]+" "+second[transport] {
				t.Fatalf("the archive holds %q, want both images", got)
			}
			src.Close(ctx)
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Fatalf("beside the archive: %v", names)
			}
		})
	}
}

// A blob whose stream the host verifies (WithHostVerified) is not hashed
// again here: only its size is checked. Without the mark the digest is.
func TestArchiveTrustsHostVerifiedStreams(t *testing.T) {
	for _, transport := range []string{OCIArchive, DockerArchive} {
		t.Run(transport, func(t *testing.T) {
			img := layertest.NewImage("trust", layertest.Options{})
			b := img.Config // a config goes through the same checks in both formats
			wrong := append([]byte(nil), b.Data...)
			wrong[0] ^= 1
			e := transporttest.OpenEndpoint(t, New(nil), transport, filepath.Join(t.TempDir(), "x.tar"), pluginapi.ModeWrite)
			defer e.Close(context.Background())
			d := e.(pluginapi.Destination)
			if err := d.PutBlob(context.Background(), b.Desc, bytes.NewReader(wrong)); err == nil {
				t.Fatal("unmarked: a blob with the wrong digest was taken")
			}
			if err := d.PutBlob(pluginapi.WithHostVerified(context.Background()), b.Desc, bytes.NewReader(wrong[1:])); err == nil {
				t.Fatal("marked: a blob of the wrong size was taken")
			}
			if err := d.PutBlob(pluginapi.WithHostVerified(context.Background()), b.Desc, bytes.NewReader(wrong)); err != nil {
				t.Fatalf("marked verified by the host: %v (the plugin hashed it again)", err)
			}
		})
	}
}
