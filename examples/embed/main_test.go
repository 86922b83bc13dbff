package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/go-digest"

	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

func TestCopyImage(t *testing.T) {
	// The oci: transport is a plugin binary: build it from the Stevedore
	// module and point the search path at it, as an installation would.
	plugins := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(plugins, "stevedore-transport-oci"), "./plugins/oci-layout")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the oci plugin: %v\n%s", err, out)
	}
	t.Setenv("STEVEDORE_PLUGIN_PATH", plugins)

	dir := t.TempDir()
	img := transporttest.RandomImage(7, 3, 256<<10)
	writeLayout(t, filepath.Join(dir, "src"), img, "v1")

	logs := &transporttest.LogBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "embed-test", Level: hclog.Debug, Output: logs})
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := copyImage(ctx, "oci:"+dir+"/src:v1", "oci:"+dir+"/dst:v1", logger, &progress)
	if err != nil {
		t.Fatalf("copy: %v\nlogs:\n%s", err, logs)
	}
	if res.Descriptor.Digest != img.Manifest.Descriptor.Digest {
		t.Fatalf("copied %s, want %s", res.Descriptor.Digest, img.Manifest.Descriptor.Digest)
	}

	// Every blob arrived, byte for byte.
	dst, err := layout.Open(filepath.Join(dir, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range append(img.Blobs(), img.Manifest) {
		got, err := dst.ReadBlob(ctx, b.Descriptor, 1<<30)
		if err != nil || digest.FromBytes(got) != b.Descriptor.Digest {
			t.Fatalf("destination blob %s: %v", b.Descriptor.Digest, err)
		}
	}

	// The callback saw each blob finish and the manifest written.
	events := progress.String()
	done := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(events))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 {
			done[f[0]+" "+f[1]] = true
			switch f[0] {
			case "blob-done", "blob-linked", "blob-mounted": // how it got there depends on the transports
				done["arrived "+f[1]] = true
			}
		}
	}
	for _, b := range img.Blobs() {
		if !done["arrived "+b.Descriptor.Digest.String()] {
			t.Errorf("no event saying blob %s arrived; events:\n%s", b.Descriptor.Digest, events)
		}
	}
	if !done["manifest-done "+img.Manifest.Descriptor.Digest.String()] {
		t.Errorf("no manifest-done event; events:\n%s", events)
	}

	// The host and the plugin logged through our logger: the plugin's
	// start is logged under our logger's name.
	if out := logs.String(); !strings.Contains(out, "embed-test") || !strings.Contains(out, "stevedore-transport-oci") {
		t.Errorf("the custom logger did not receive the host's logs:\n%s", out)
	}
}

// writeLayout stores img under tag in a new OCI layout at dir.
func writeLayout(t *testing.T, dir string, img transporttest.Image, tag string) {
	t.Helper()
	ctx := context.Background()
	s, err := layout.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range append(img.Blobs(), img.Manifest) {
		if err := s.WriteBlobBytes(ctx, b.Descriptor, b.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Tag(ctx, img.Manifest.Descriptor, tag); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		t.Fatal(err)
	}
}
