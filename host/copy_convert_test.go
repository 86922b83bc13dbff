package host_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/plugins/docker/registry"
)

// refuseManifests makes r answer every manifest PUT of media type mt as a
// registry that does not take that type does: zot (415 with a
// MANIFEST_INVALID body) for Docker schema 2, OpenShift without schema 2
// (400 MANIFEST_INVALID) for OCI.
func refuseManifests(r *registrytest.Registry, mt string, status int) {
	r.AddFault(registrytest.Fault{
		Kind: registrytest.Respond,
		Match: func(req *http.Request) bool {
			return req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/manifests/") && req.Header.Get("Content-Type") == mt
		},
		Status: status,
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   `{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":{"mediaType":"` + mt + `"}}]}`,
		Drain:  true,
	})
}

// A registry that refuses a manifest's type gets the image in the other
// format, blobs unchanged, with the digest the conversion gives (skopeo's:
// see the CLI's interop test); --preserve-digests refuses instead, and
// --format converts without being asked.
func TestCopyConvertsWhenTypeRefused(t *testing.T) {
	ctx := context.Background()
	a := registrytest.Start(t, registrytest.Options{})
	img := a.Seed("r", "oci", 2, 100_000)
	ociM, err := manifest.Parse(img.ManifestRaw, "")
	if err != nil {
		t.Fatal(err)
	}
	docker, err := manifest.Convert(ociM, manifest.FormatDocker, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.PushManifest("r", "docker", manifest.DockerManifest, docker.Raw); err != nil {
		t.Fatal(err)
	}
	h, opts := dockerHost(t, registry.New())

	tests := []struct {
		name, tag, refuse string
		status            int
		want              *manifest.Manifest
	}{
		{"zot refuses Docker schema 2", "docker", manifest.DockerManifest, http.StatusUnsupportedMediaType, ociM},
		{"OpenShift refuses OCI", "oci", manifest.OCIManifest, http.StatusBadRequest, docker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := registrytest.Start(t, registrytest.Options{})
			refuseManifests(b, tt.refuse, tt.status)
			src, dst := "docker://"+a.Ref("r")+":"+tt.tag, "docker://"+b.Ref("m")+":v1"

			res, err := h.Copy(ctx, src, dst, opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Descriptor.Digest != tt.want.Digest || res.Converted != manifest.FormatOf(tt.want.MediaType) {
				t.Fatalf("wrote %s (converted %q), want %s", res.Descriptor.Digest, res.Converted, tt.want.Digest)
			}
			raw, mt, err := b.GetManifest("m", "v1")
			if err != nil || string(raw) != string(tt.want.Raw) || mt != tt.want.MediaType {
				t.Fatalf("destination holds %s %s (%v), want %s", mt, raw, err, tt.want.Raw)
			}
			// Blobs went once: the retry in the other format finds them.
			if res.BlobsCopied != len(img.Blobs) || b.Stats().Uploads != len(img.Blobs) {
				t.Fatalf("%d blobs copied, want %d", res.BlobsCopied, len(img.Blobs))
			}
			o := opts
			o.PreserveDigests = true
			_, err = h.Copy(ctx, src, "docker://"+b.Ref("p")+":v1", o)
			if !errors.Is(err, core.ErrManifestRejected) || !strings.Contains(err.Error(), "refused as "+tt.refuse) {
				t.Fatalf("with --preserve-digests: %v, want the registry's refusal", err)
			}
			if _, _, err := b.GetManifest("p", "v1"); err == nil {
				t.Fatal("tagged after a refused manifest")
			}

			// A second copy finds the converted image there.
			if res, err := h.Copy(ctx, src, dst, opts); err != nil || res.BlobsCopied != 0 || res.Descriptor.Digest != tt.want.Digest {
				t.Fatalf("second copy: %+v %v", res, err)
			}
		})
	}

	// --format converts without a refusal, and keeps what is in it.
	c := registrytest.Start(t, registrytest.Options{})
	o := opts
	o.Format = manifest.FormatDocker
	for _, tag := range []string{"oci", "docker"} {
		res, err := h.Copy(ctx, "docker://"+a.Ref("r")+":"+tag, "docker://"+c.Ref("f")+":"+tag, o)
		if err != nil {
			t.Fatal(err)
		}
		if res.Descriptor.Digest != docker.Digest || (res.Converted != "") != (tag == "oci") {
			t.Fatalf("--format v2s2 of %s: %s converted %q", tag, res.Descriptor.Digest, res.Converted)
		}
	}
	o.PreserveDigests = true
	if _, err := h.Copy(ctx, "docker://"+a.Ref("r")+":oci", "docker://"+c.Ref("g")+":x", o); !errors.Is(err, core.ErrUnsupported) || !strings.Contains(err.Error(), "--preserve-digests") {
		t.Fatalf("--format with --preserve-digests: %v", err)
	}
}
