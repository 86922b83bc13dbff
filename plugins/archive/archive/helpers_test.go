package archive

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// needTool skips when a peer tool is missing, except in CI where it fails.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func skopeo(t *testing.T, args ...string) string {
	needTool(t, "skopeo")
	return run(t, "skopeo", append([]string{"--insecure-policy"}, args...)...)
}

// copyImage copies the image ref of src to dst under dstRef, children
// before parents, as the host's copy engine does.
func copyImage(t *testing.T, src pluginapi.Source, ref string, dst pluginapi.Destination, dstRef string) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	top, err := src.Resolve(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	var walk func(d ocispec.Descriptor, r string)
	walk = func(d ocispec.Descriptor, r string) {
		raw, err := src.GetManifest(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		m, err := manifest.Parse(raw, d.MediaType)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range m.Children() {
			if m.IsIndex() {
				walk(c, "")
				continue
			}
			if ok, err := dst.HasBlob(ctx, c); err != nil {
				t.Fatal(err)
			} else if ok {
				continue
			}
			rc, err := src.GetBlob(ctx, c, 0)
			if err != nil {
				t.Fatal(err)
			}
			err = dst.PutBlob(ctx, c, rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := dst.PutManifest(ctx, d, raw, r); err != nil {
			t.Fatal(err)
		}
	}
	walk(top, dstRef)
	return top
}

func openEP(t *testing.T, p pluginapi.Plugin, transport, loc string, mode pluginapi.Mode) pluginapi.Endpoint {
	t.Helper()
	ep, err := p.Open(context.Background(), pluginapi.OpenRequest{Transport: transport, Location: loc, Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	return ep
}

func commitClose(t *testing.T, ep pluginapi.Endpoint) {
	t.Helper()
	if c, ok := ep.(pluginapi.Committer); ok {
		if err := c.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := ep.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func readAllBlob(t *testing.T, src pluginapi.Source, d ocispec.Descriptor, off int64) []byte {
	t.Helper()
	rc, err := src.GetBlob(context.Background(), d, off)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
