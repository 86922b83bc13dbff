package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// testPlugin is a Plugin with fast retries.
func testPlugin() *Plugin {
	p := New()
	p.RetryBase = 5 * time.Millisecond
	p.RetryMax = 20 * time.Millisecond
	p.RetryAfterMax = 50 * time.Millisecond
	return p
}

// baseOptions are the options that reach reg: its CA, and its credentials.
func baseOptions(reg *registrytest.Registry) map[string]string {
	o := map[string]string{}
	if reg.TLS {
		o["cert-dir"] = reg.CertDir
	} else {
		o["tls-verify"] = "false"
	}
	if reg.Auth != registrytest.AuthNone {
		o["creds"] = reg.Username + ":" + reg.Password
	}
	return o
}

func merge(a map[string]string, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

func openReader(t *testing.T, p *Plugin, reg *registrytest.Registry, repo string, extra map[string]string) *Reader {
	t.Helper()
	e, err := p.Open(context.Background(), pluginapi.OpenRequest{
		Transport: "docker", Location: reg.Ref(repo), Mode: pluginapi.ModeRead,
		Options: merge(baseOptions(reg), extra),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e.(*Reader)
}

func openWriter(t *testing.T, p *Plugin, reg *registrytest.Registry, repo string, extra map[string]string) *Writer {
	t.Helper()
	e, err := p.Open(context.Background(), pluginapi.OpenRequest{
		Transport: "docker", Location: reg.Ref(repo), Mode: pluginapi.ModeWrite,
		Options: merge(baseOptions(reg), extra),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e.(*Writer)
}

// readBlob reads a blob the way the host does: through a verifying reader.
func readBlob(ctx context.Context, src pluginapi.Source, desc ocispec.Descriptor) ([]byte, error) {
	rc, err := src.GetBlob(ctx, desc, 0)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(content.NewVerifyReader(rc, desc))
}

// pushImage copies img to dst like the host's engine: blobs it lacks, then
// the manifest under tag.
func pushImage(t *testing.T, dst *Writer, img *registrytest.Image, tag string) {
	t.Helper()
	ctx := context.Background()
	for _, d := range append([]ocispec.Descriptor{img.Config}, img.Layers...) {
		has, err := dst.HasBlob(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if has {
			continue
		}
		if err := dst.PutBlob(ctx, d, bytes.NewReader(img.Blobs[d.Digest])); err != nil {
			t.Fatal(err)
		}
	}
	if err := dst.PutManifest(ctx, img.Manifest, img.ManifestRaw, tag); err != nil {
		t.Fatal(err)
	}
}

func mustIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want one wrapping %v", err, target)
	}
}
