package registry

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/internal/registrytest"
)

func needSkopeo(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("skopeo")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("skopeo is required in CI (apt-get install skopeo): %v", err)
	}
	t.Skipf("skopeo not installed (apt-get install skopeo); skipping: %v", err)
	return ""
}

func skopeo(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"--insecure-policy"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skopeo %v: %v: %s", args, err, stderr.String())
	}
	return out
}

// writeLayout stores img as an OCI image layout with the tag ref.
func writeLayout(t *testing.T, dir, ref string, img *registrytest.Image) {
	t.Helper()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	all := map[digest.Digest][]byte{img.Manifest.Digest: img.ManifestRaw}
	for d, b := range img.Blobs {
		all[d] = b
	}
	for d, b := range all {
		if err := os.WriteFile(filepath.Join(blobs, d.Encoded()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := img.Manifest
	m.Annotations = map[string]string{ocispec.AnnotationRefName: ref}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specsVersioned(), MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{m}})
	os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// TestSkopeoInterop: skopeo pushes, we pull with identical digests; we push,
// skopeo inspects and pulls. TLS with the generated CA and basic auth.
func TestSkopeoInterop(t *testing.T) {
	bin := needSkopeo(t)
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{TLS: true, Auth: registrytest.AuthBasic})
	creds := reg.Username + ":" + reg.Password
	p := testPlugin()

	// skopeo -> registry -> us. The layers are real gzip streams: skopeo
	// would compress uncompressed layers on the way and change digests.
	img, err := registrytest.NewImageFromLayers(ocispec.MediaTypeImageLayerGzip, gzipped(t, 300_000), gzipped(t, 200_000))
	if err != nil {
		t.Fatal(err)
	}
	layout := t.TempDir()
	writeLayout(t, layout, "v1", img)
	skopeo(t, bin, "copy", "--dest-cert-dir", reg.CertDir, "--dest-creds", creds, "oci:"+layout+":v1", "docker://"+reg.Ref("interop/a:v1"))
	src := openReader(t, p, reg, "interop/a", nil)
	desc, err := src.Resolve(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != img.Manifest.Digest {
		t.Fatalf("skopeo pushed %s, we resolved %s", img.Manifest.Digest, desc.Digest)
	}
	raw, err := src.GetManifest(ctx, desc)
	if err != nil || !bytes.Equal(raw, img.ManifestRaw) {
		t.Fatalf("manifest differs: %v", err)
	}
	for _, d := range append(img.Layers, img.Config) {
		b, err := readBlob(ctx, src, d)
		if err != nil || !bytes.Equal(b, img.Blobs[d.Digest]) {
			t.Fatalf("blob %s: %v", d.Digest, err)
		}
	}

	// us -> registry -> skopeo.
	img2, err := registrytest.NewImageFromLayers(ocispec.MediaTypeImageLayerGzip, gzipped(t, 100_000), gzipped(t, 200_000), gzipped(t, 10))
	if err != nil {
		t.Fatal(err)
	}
	pushImage(t, openWriter(t, p, reg, "interop/b", nil), img2, "v2")
	ref := "docker://" + reg.Ref("interop/b:v2")
	gotRaw := skopeo(t, bin, "inspect", "--raw", "--cert-dir", reg.CertDir, "--creds", creds, ref)
	if !bytes.Equal(gotRaw, img2.ManifestRaw) {
		t.Fatalf("skopeo inspect --raw: %s", gotRaw)
	}
	var info struct{ Digest digest.Digest }
	if err := json.Unmarshal(skopeo(t, bin, "inspect", "--cert-dir", reg.CertDir, "--creds", creds, ref), &info); err != nil || info.Digest != img2.Manifest.Digest {
		t.Fatalf("skopeo inspect digest %s (%v), want %s", info.Digest, err, img2.Manifest.Digest)
	}
	out := t.TempDir()
	skopeo(t, bin, "copy", "--src-cert-dir", reg.CertDir, "--src-creds", creds, ref, "oci:"+out+":v2")
	for d, b := range img2.Blobs {
		got, err := os.ReadFile(filepath.Join(out, "blobs", "sha256", d.Encoded()))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("skopeo copy lost blob %s: %v", d, err)
		}
	}
	gotManifest, err := os.ReadFile(filepath.Join(out, "blobs", "sha256", img2.Manifest.Digest.Encoded()))
	if err != nil || !bytes.Equal(gotManifest, img2.ManifestRaw) {
		t.Fatalf("skopeo copy changed the manifest: %v", err)
	}
}

func specsVersioned() specs.Versioned { return specs.Versioned{SchemaVersion: 2} }

// gzipped returns a gzip stream of n random bytes.
func gzipped(t *testing.T, n int) []byte {
	t.Helper()
	b, _ := randomBlob(t, n)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}
