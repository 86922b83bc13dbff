package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/layer"
	"github.com/stevedore-oci/stevedore/core/layer/layertest"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/internal/peertest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

func getManifest(t *testing.T, src pluginapi.Source, ref string) (ocispec.Descriptor, []byte) {
	t.Helper()
	d, err := src.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := src.GetManifest(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(raw) != d.Digest {
		t.Fatalf("manifest of %q does not match its descriptor", ref)
	}
	return d, raw
}

func configDigest(t *testing.T, raw []byte) digest.Digest {
	t.Helper()
	m, err := manifest.Parse(raw, "")
	if err != nil {
		t.Fatal(err)
	}
	return m.Config.Digest
}

// TestDockerArchiveSkopeoRoundTrip: skopeo docker-archive -> us -> skopeo.
func TestDockerArchiveSkopeoRoundTrip(t *testing.T) {
	tmp := t.TempDir()
	fx := filepath.Join(tmp, "fx")
	img := layertest.NewImage("docker", layertest.Options{Layers: 3})
	if err := layertest.WriteImage(fx, "t", img); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(tmp, "a.tar")
	peertest.Skopeo(t, "copy", "-q", "oci:"+fx+":t", "docker-archive:"+a+":foo/bar:v1")
	skopeoRaw := peertest.Skopeo(t, "inspect", "--raw", "docker-archive:"+a)

	p := New(nil)
	src := transporttest.OpenEndpoint(t, p, DockerArchive, a, pluginapi.ModeRead).(pluginapi.Source)
	defer src.(pluginapi.Endpoint).Close(context.Background())
	for _, ref := range []string{"", "foo/bar:v1", "docker.io/foo/bar:v1", "@0"} {
		_, raw := getManifest(t, src, ref)
		if string(raw) != skopeoRaw {
			t.Fatalf("ref %q: our manifest\n%s\nskopeo's\n%s", ref, raw, skopeoRaw)
		}
	}
	if _, err := src.Resolve(context.Background(), "@1"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("@1: %v", err)
	}
	if _, err := src.Resolve(context.Background(), "foo/bar:v2"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("other tag: %v", err)
	}

	b := filepath.Join(tmp, "b.tar")
	dst := transporttest.OpenEndpoint(t, p, DockerArchive, b, pluginapi.ModeWrite)
	transporttest.CopyImage(t, src, "foo/bar:v1", dst.(pluginapi.Destination), "foo/bar:v1")
	transporttest.CommitClose(t, dst)
	if got := peertest.Skopeo(t, "inspect", "--raw", "docker-archive:"+b+":foo/bar:v1"); got != skopeoRaw {
		t.Fatalf("skopeo reads our archive as\n%s\nwant\n%s", got, skopeoRaw)
	}
	c := filepath.Join(tmp, "c")
	peertest.Skopeo(t, "copy", "-q", "docker-archive:"+b, "oci:"+c+":x")
	if got := configDigest(t, readOCIManifest(t, c, "x")); got != img.Config.Desc.Digest {
		t.Fatalf("config %s, want %s", got, img.Config.Desc.Digest)
	}
}

func readOCIManifest(t *testing.T, dir, tag string) []byte {
	t.Helper()
	d := ociDigest(t, dir, tag)
	b, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDockerArchiveWriteMulti writes compressed images from OCI into one
// docker-archive: the layers are decompressed, the config digests kept,
// the manifest change logged, and skopeo selects each image.
func TestDockerArchiveWriteMulti(t *testing.T) {
	tmp := t.TempDir()
	ctx := context.Background()
	var logBuf bytes.Buffer
	p := New(hclog.New(&hclog.LoggerOptions{Output: &logBuf, Level: hclog.Warn}))
	one := layertest.NewImage("one", layertest.Options{})
	two := layertest.NewImage("two", layertest.Options{Layers: 3, Docker: true})
	path := filepath.Join(tmp, "multi.tar")
	dst := transporttest.OpenEndpoint(t, p, DockerArchive, path, pluginapi.ModeWrite).(*dockerDest)
	put := func(img layertest.Image, ref string) {
		for _, b := range img.Blobs() {
			if ok, _ := dst.HasBlob(ctx, b.Desc); ok {
				continue
			}
			if err := dst.PutBlob(ctx, b.Desc, bytes.NewReader(b.Data)); err != nil {
				t.Fatal(err)
			}
		}
		if err := dst.PutManifest(ctx, img.Manifest.Desc, img.Manifest.Data, ref); err != nil {
			t.Fatal(err)
		}
	}
	put(one, "example.com/one:1")
	put(two, "two:2")
	put(one, "example.com/one:latest")
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("archive visible before commit")
	}
	transporttest.CommitClose(t, dst)
	if !strings.Contains(logBuf.String(), "manifest digest changes") || !strings.Contains(logBuf.String(), one.Config.Desc.Digest.String()) {
		t.Fatalf("no warning about the manifest change: %q", logBuf.String())
	}

	src := transporttest.OpenEndpoint(t, p, DockerArchive, path, pluginapi.ModeRead).(*dockerSource)
	defer src.Close(ctx)
	if len(src.items) != 2 || strings.Join(src.items[0].RepoTags, ",") != "example.com/one:1,example.com/one:latest" {
		t.Fatalf("manifest.json: %+v", src.items)
	}
	if _, err := src.Resolve(ctx, ""); !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "two:2") {
		t.Fatalf("default of a multi-image archive: %v", err)
	}
	for _, c := range []struct {
		ref string
		img layertest.Image
		at  string
	}{{"example.com/one:latest", one, "@0"}, {"two:2", two, "@1"}, {"docker.io/library/two:2", two, "@1"}} {
		_, raw := getManifest(t, src, c.ref)
		if configDigest(t, raw) != c.img.Config.Desc.Digest {
			t.Fatalf("%s: wrong image", c.ref)
		}
		if got := peertest.Skopeo(t, "inspect", "--raw", "docker-archive:"+path+":"+c.ref); got != string(raw) {
			t.Fatalf("%s: skopeo sees\n%s\nwe see\n%s", c.ref, got, raw)
		}
		if got := peertest.Skopeo(t, "inspect", "--raw", "docker-archive:"+path+":"+c.at); got != string(raw) {
			t.Fatalf("%s: skopeo sees another image", c.at)
		}
		m, _ := manifest.Parse(raw, "")
		for i, l := range m.Layers {
			if l.Digest != c.img.DiffIDs[i] {
				t.Fatalf("%s: layer %d is %s, want the diff ID %s", c.ref, i, l.Digest, c.img.DiffIDs[i])
			}
			if got := transporttest.ReadBlob(t, src, l, 0); digest.FromBytes(got) != l.Digest {
				t.Fatalf("%s: layer %d content", c.ref, i)
			}
		}
	}
	// skopeo copies an image out with the config digest kept.
	out := filepath.Join(tmp, "out")
	peertest.Skopeo(t, "copy", "-q", "docker-archive:"+path+":two:2", "oci:"+out+":x")
	if got := configDigest(t, readOCIManifest(t, out, "x")); got != two.Config.Desc.Digest {
		t.Fatalf("config %s", got)
	}
}

func TestDockerArchiveRefusesIndexAndDiscards(t *testing.T) {
	tmp := t.TempDir()
	ctx := context.Background()
	ix := layertest.NewIndex("ix", "amd64", "arm64")
	dst := transporttest.OpenEndpoint(t, New(nil), DockerArchive, filepath.Join(tmp, "x.tar"), pluginapi.ModeWrite).(*dockerDest)
	if err := dst.PutManifest(ctx, ix.Index.Desc, ix.Index.Data, "x:1"); !errors.Is(err, core.ErrUnsupported) {
		t.Fatalf("index: %v", err)
	}
	img := ix.Images[0]
	if err := dst.PutManifest(ctx, img.Manifest.Desc, img.Manifest.Data, "x:1"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("manifest before its blobs: %v", err)
	}
	bad := img.Layers[0]
	if err := dst.PutBlob(ctx, bad.Desc, bytes.NewReader(layertest.Gzip([]byte("other")))); !errors.Is(err, core.ErrSizeMismatch) && !errors.Is(err, core.ErrDigestMismatch) {
		t.Fatalf("wrong layer: %v", err)
	}
	if ok, _ := dst.HasBlob(ctx, bad.Desc); ok {
		t.Fatal("wrong layer counted")
	}
	if err := dst.Commit(ctx); err == nil {
		t.Fatal("commit of an empty archive accepted")
	}
	dst.Close(ctx)
	emptyDir(t, tmp)
}

// legacyArchive builds what `docker save` (before Docker 25) writes for
// two images sharing a layer: <id>/layer.tar, <id>/json, <id>.json
// configs, a symlinked duplicate layer, manifest.json and repositories.
func legacyArchive(t *testing.T, a, b layertest.Image) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	file := func(name string, data []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Size: int64(len(data)), Mode: 0o644})
		tw.Write(data)
	}
	var items []dockerItem
	seen := map[digest.Digest]string{}
	for n, img := range []layertest.Image{a, b} {
		cfg := img.Config.Desc.Digest.Encoded() + ".json"
		file(cfg, img.Config.Data)
		it := dockerItem{Config: cfg, RepoTags: []string{[]string{"first:1", "second:2"}[n]}}
		for i, l := range img.Layers {
			plain := plainOf(t, l.Data)
			id := digest.FromString(img.Config.Desc.Digest.String() + string(rune(i))).Encoded()
			tw.WriteHeader(&tar.Header{Name: id + "/", Typeflag: tar.TypeDir, Mode: 0o755})
			file(id+"/VERSION", []byte("1.0"))
			if prev, ok := seen[img.DiffIDs[i]]; ok {
				tw.WriteHeader(&tar.Header{Name: id + "/layer.tar", Typeflag: tar.TypeSymlink, Linkname: "../" + prev})
			} else {
				file(id+"/layer.tar", plain)
				seen[img.DiffIDs[i]] = id + "/layer.tar"
			}
			it.Layers = append(it.Layers, id+"/layer.tar")
		}
		items = append(items, it)
	}
	mj, _ := json.Marshal(items)
	file("manifest.json", mj)
	file("repositories", []byte(`{"first":{"1":"x"},"second":{"2":"y"}}`))
	tw.Close()
	return buf.Bytes()
}

func plainOf(t *testing.T, gz []byte) []byte {
	t.Helper()
	rc, _, err := layer.Decompress(bytes.NewReader(gz))
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

func TestDockerArchiveReadsLegacyAndCompressed(t *testing.T) {
	tmp := t.TempDir()
	tmpdir := t.TempDir()
	t.Setenv("TMPDIR", tmpdir)
	ctx := context.Background()
	a := layertest.NewImage("legacy-a", layertest.Options{})
	// The second image shares a's first layer.
	b := layertest.NewImage("legacy-b", layertest.Options{})
	b.Layers[0], b.DiffIDs[0] = a.Layers[0], a.DiffIDs[0]
	b = rebuild(t, b)
	raw := legacyArchive(t, a, b)
	plain := filepath.Join(tmp, "legacy.tar")
	gz := filepath.Join(tmp, "legacy.tar.gz")
	os.WriteFile(plain, raw, 0o644)
	os.WriteFile(gz, layertest.Gzip(raw), 0o644)
	for _, path := range []string{plain, gz} {
		src := transporttest.OpenEndpoint(t, New(nil), DockerArchive, path, pluginapi.ModeRead).(*dockerSource)
		for _, c := range []struct {
			ref string
			img layertest.Image
		}{{"first:1", a}, {"@1", b}, {"second:2", b}} {
			_, m := getManifest(t, src, c.ref)
			if configDigest(t, m) != c.img.Config.Desc.Digest {
				t.Fatalf("%s %s: wrong image", path, c.ref)
			}
			pm, _ := manifest.Parse(m, "")
			for _, l := range pm.Layers {
				if got := transporttest.ReadBlob(t, src, l, 0); digest.FromBytes(got) != l.Digest {
					t.Fatalf("%s %s: layer %s content differs", path, c.ref, l.Digest)
				}
			}
			if path == gz {
				// skopeo 1.9 fails on compressed docker archives.
				continue
			}
			// skopeo 1.9 reports size 0 for a layer stored as a symlink
			// (docker save's de-duplication); compare digests only.
			sm, err := manifest.Parse([]byte(peertest.Skopeo(t, "inspect", "--raw", "docker-archive:"+path+":"+c.ref)), "")
			if err != nil {
				t.Fatal(err)
			}
			if sm.Config.Digest != pm.Config.Digest || len(sm.Layers) != len(pm.Layers) {
				t.Fatalf("%s %s: skopeo sees another image", path, c.ref)
			}
			for i := range sm.Layers {
				if sm.Layers[i].Digest != pm.Layers[i].Digest {
					t.Fatalf("%s %s: layer %d: skopeo %s, we %s", path, c.ref, i, sm.Layers[i].Digest, pm.Layers[i].Digest)
				}
			}
		}
		if tags, _ := src.ListTags(ctx); strings.Join(tags, ",") != "first:1,second:2" {
			t.Fatalf("tags %v", tags)
		}
		// The decompressed copy has no name even while it is read: a
		// reader killed outright leaves nothing in $TMPDIR.
		emptyDir(t, tmpdir)
		src.Close(ctx)
	}
}

// rebuild recomputes config and manifest after layers were swapped.
func rebuild(t *testing.T, img layertest.Image) layertest.Image {
	var cfg ocispec.Image
	json.Unmarshal(img.Config.Data, &cfg)
	cfg.RootFS.DiffIDs = img.DiffIDs
	cb, _ := json.Marshal(cfg)
	img.Config = layertest.Blob{Desc: ocispec.Descriptor{MediaType: img.Config.Desc.MediaType, Digest: digest.FromBytes(cb), Size: int64(len(cb))}, Data: cb}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: img.Config.Desc}
	m.SchemaVersion = 2
	for _, l := range img.Layers {
		m.Layers = append(m.Layers, l.Desc)
	}
	mb, _ := json.Marshal(m)
	img.Manifest = layertest.Blob{Desc: ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(mb), Size: int64(len(mb))}, Data: mb}
	return img
}

// TestDockerArchiveReadsDocker25 reads an archive carrying an OCI layout
// next to manifest.json: the original manifest (compressed layers) is kept.
func TestDockerArchiveReadsDocker25(t *testing.T) {
	tmp := t.TempDir()
	ctx := context.Background()
	img := layertest.NewImage("d25", layertest.Options{})
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	file := func(name string, data []byte) {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Size: int64(len(data)), Mode: 0o644})
		tw.Write(data)
	}
	file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	it := dockerItem{Config: "blobs/sha256/" + img.Config.Desc.Digest.Encoded(), RepoTags: []string{"d25:latest"}}
	for _, b := range append(img.Blobs(), img.Manifest) {
		file("blobs/sha256/"+b.Desc.Digest.Encoded(), b.Data)
	}
	for _, l := range img.Layers {
		it.Layers = append(it.Layers, "blobs/sha256/"+l.Desc.Digest.Encoded())
	}
	d := img.Manifest.Desc
	d.Platform = nil
	d.Annotations = map[string]string{"io.containerd.image.name": "docker.io/library/d25:latest", "org.opencontainers.image.ref.name": "latest"}
	ix, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{d}})
	file("index.json", ix)
	mj, _ := json.Marshal([]dockerItem{it})
	file("manifest.json", mj)
	tw.Close()
	path := filepath.Join(tmp, "d25.tar")
	os.WriteFile(path, buf.Bytes(), 0o644)

	src := transporttest.OpenEndpoint(t, New(nil), DockerArchive, path, pluginapi.ModeRead).(*dockerSource)
	defer src.Close(ctx)
	got, raw := getManifest(t, src, "d25")
	if got.Digest != img.Manifest.Desc.Digest || !bytes.Equal(raw, img.Manifest.Data) {
		t.Fatalf("resolved %s, want the original %s", got.Digest, img.Manifest.Desc.Digest)
	}
	for _, b := range img.Blobs() {
		if !bytes.Equal(transporttest.ReadBlob(t, src, b.Desc, 0), b.Data) {
			t.Fatalf("blob %s differs", b.Desc.Digest)
		}
	}
}
