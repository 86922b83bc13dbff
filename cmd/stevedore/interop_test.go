package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/internal/imagegen"
	"github.com/stevedore-oci/stevedore/internal/peertest"
)

func skopeoDigest(t *testing.T, image string) string {
	t.Helper()
	var info struct{ Digest string }
	if err := json.Unmarshal([]byte(peertest.Skopeo(t, "inspect", image)), &info); err != nil {
		t.Fatal(err)
	}
	return info.Digest
}

// A layout we wrote is read and copied by skopeo with the same digest, and
// one skopeo wrote is copied by us with the same digest: single image.
func TestSkopeoInteropSingleImage(t *testing.T) {
	peertest.Need(t, "skopeo")
	needPlugin(t, "oci")
	dir := t.TempDir()
	img := genImage(t, filepath.Join(dir, "gen"), "v1", 2, 128<<10)
	want := img.Manifest.Digest.String()

	mustRun(t, "copy", "oci:"+dir+"/gen:v1", "oci:"+dir+"/ours:v1")
	if got := skopeoDigest(t, "oci:"+dir+"/ours:v1"); got != want {
		t.Fatalf("skopeo inspect of our layout: %s, want %s", got, want)
	}
	peertest.Skopeo(t, "copy", "oci:"+dir+"/ours:v1", "oci:"+dir+"/skopeo:v1")
	if got := skopeoDigest(t, "oci:"+dir+"/skopeo:v1"); got != want {
		t.Fatalf("skopeo copy of our layout changed the digest: %s", got)
	}
	out := mustRun(t, "copy", "oci:"+dir+"/skopeo:v1", "oci:"+dir+"/back:v1")
	if strings.TrimSpace(out) != want || rawSHA(t, "oci:"+dir+"/back:v1") != want {
		t.Fatalf("our copy of skopeo's layout: %s, want %s", out, want)
	}
	// --format prints what skopeo's does, for the image and its config.
	for _, args := range [][]string{
		{"--format", "{{.Digest}} {{.Os}}/{{.Architecture}} {{len .Layers}} {{.Labels}}"},
		{"--config", "--format", "{{.Architecture}} {{.Config.Env}} {{len .RootFS.DiffIDs}}"},
	} {
		a := append(append([]string{"inspect"}, args...), "oci:"+dir+"/ours:v1")
		if ours, theirs := mustRun(t, a...), peertest.Skopeo(t, a...); ours != theirs {
			t.Errorf("%v: we print %q, skopeo %q", args, ours, theirs)
		}
	}
}

// An image whose config has no creation time: inspect says "Created": null,
// as skopeo's does (a consumer reading the key finds it either way).
func TestSkopeoInteropInspectNoCreated(t *testing.T) {
	peertest.Need(t, "skopeo")
	needPlugin(t, "oci")
	dir := t.TempDir()
	s, err := layout.Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := imagegen.Write(context.Background(), s, "v1", imagegen.Spec{Seed: 7, NoCreated: true, Layers: []imagegen.Layer{{Size: 1024}}}); err != nil {
		t.Fatal(err)
	}
	created := func(out string) string {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		v, ok := m["Created"]
		if !ok {
			return "absent"
		}
		return string(v)
	}
	ours, theirs := created(mustRun(t, "inspect", "oci:"+dir+":v1")), created(peertest.Skopeo(t, "inspect", "oci:"+dir+":v1"))
	if ours != theirs || ours != "null" {
		t.Fatalf("Created: ours %s, skopeo's %s (want null)", ours, theirs)
	}
}

// The same with a two-platform index, --all on both sides.
func TestSkopeoInteropIndex(t *testing.T) {
	peertest.Need(t, "skopeo")
	needPlugin(t, "oci")
	dir := t.TempDir()
	idx := genIndex(t, filepath.Join(dir, "gen"), "multi")
	want := idx.Digest.String()

	mustRun(t, "copy", "--all", "oci:"+dir+"/gen:multi", "oci:"+dir+"/ours:multi")
	raw := peertest.Skopeo(t, "inspect", "--raw", "oci:"+dir+"/ours:multi")
	if got := sha(raw); got != want {
		t.Fatalf("skopeo inspect --raw of our index: %s, want %s", got, want)
	}
	peertest.Skopeo(t, "copy", "--all", "oci:"+dir+"/ours:multi", "oci:"+dir+"/skopeo:multi")
	if got := sha(peertest.Skopeo(t, "inspect", "--raw", "oci:"+dir+"/skopeo:multi")); got != want {
		t.Fatalf("skopeo copy --all of our index changed the digest: %s", got)
	}
	mustRun(t, "copy", "--all", "oci:"+dir+"/skopeo:multi", "oci:"+dir+"/back:multi")
	if got := rawSHA(t, "oci:"+dir+"/back:multi"); got != want {
		t.Fatalf("our copy of skopeo's index: %s, want %s", got, want)
	}
	// Without --all both tools pick one platform the same way.
	ours := strings.TrimSpace(mustRun(t, "copy", "--platform", "linux/arm64", "oci:"+dir+"/skopeo:multi", "oci:"+dir+"/one:arm"))
	peertest.Skopeo(t, "copy", "--override-arch", "arm64", "oci:"+dir+"/skopeo:multi", "oci:"+dir+"/sone:arm")
	if theirs := sha(peertest.Skopeo(t, "inspect", "--raw", "oci:"+dir+"/sone:arm")); theirs != ours {
		t.Fatalf("platform pick differs: ours %s, skopeo %s", ours, theirs)
	}
}

func sha(s string) string {
	return shaBytes([]byte(s))
}

// --format converts as skopeo's --format does, to the byte: an OCI image and
// a three-platform OCI index written as Docker schema 2 by either tool have
// the same digests, and converting skopeo's result back gives the original.
func TestSkopeoInteropFormat(t *testing.T) {
	peertest.Need(t, "skopeo")
	needPlugin(t, "oci")
	needPlugin(t, "dir")
	dir := t.TempDir()
	img := genImage(t, filepath.Join(dir, "gen"), "v1", 2, 64<<10)
	idx := genIndex(t, filepath.Join(dir, "gen"), "multi")
	for _, c := range []struct {
		name, tag string
		all       []string
		want      string
	}{
		{"image", "v1", nil, img.Manifest.Digest.String()},
		{"index", "multi", []string{"--all"}, idx.Digest.String()},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := "oci:" + dir + "/gen:" + c.tag
			args := append(append([]string{"copy"}, c.all...), "--format", "v2s2", src, "dir:"+dir+"/ours-"+c.name)
			ours := strings.TrimSpace(mustRun(t, args...))
			args = append(append([]string{"copy"}, c.all...), "--format", "v2s2", src, "dir:"+dir+"/skopeo-"+c.name)
			peertest.Skopeo(t, args...)
			theirs := sha(peertest.Skopeo(t, "inspect", "--raw", "dir:"+dir+"/skopeo-"+c.name))
			if ours == c.want || ours != theirs {
				t.Fatalf("--format v2s2: ours %s, skopeo's %s (source %s)", ours, theirs, c.want)
			}
			var m struct{ MediaType string }
			if err := json.Unmarshal([]byte(mustRun(t, "inspect", "--raw", "dir:"+dir+"/ours-"+c.name)), &m); err != nil || !strings.HasPrefix(m.MediaType, "application/vnd.docker.distribution.manifest.") {
				t.Fatalf("media type %q (%v)", m.MediaType, err)
			}
			args = append(append([]string{"copy"}, c.all...), "--format", "oci", "dir:"+dir+"/skopeo-"+c.name, "oci:"+dir+"/back:"+c.tag)
			if back := strings.TrimSpace(mustRun(t, args...)); back != c.want {
				t.Fatalf("skopeo's schema 2 converted back: %s, want %s", back, c.want)
			}
		})
	}
}

// An image without layers goes through docker-archive both ways: ours is
// read back by us and by skopeo, skopeo's by us (a null layers array made
// the manifest unreadable).
func TestDockerArchiveWithoutLayers(t *testing.T) {
	peertest.Need(t, "skopeo")
	needPlugin(t, "oci")
	needPlugin(t, "archive")
	dir := t.TempDir()
	genImage(t, filepath.Join(dir, "gen"), "zero", 0, 0)
	src := "oci:" + dir + "/gen:zero"
	mustRun(t, "copy", src, "docker-archive:"+dir+"/ours.tar:z:zero")
	peertest.Skopeo(t, "copy", src, "docker-archive:"+dir+"/skopeo.tar:z:zero")
	for _, tar := range []string{"ours.tar", "skopeo.tar"} {
		var cfg struct{ RootFS struct{ DiffIDs []string } }
		out := mustRun(t, "inspect", "--config", "docker-archive:"+dir+"/"+tar)
		if err := json.Unmarshal([]byte(out), &cfg); err != nil || len(cfg.RootFS.DiffIDs) != 0 {
			t.Fatalf("%s: %v %s", tar, err, out)
		}
		mustRun(t, "copy", "docker-archive:"+dir+"/"+tar, "oci:"+dir+"/back-"+tar+":zero")
	}
	peertest.Skopeo(t, "inspect", "docker-archive:"+dir+"/ours.tar")
}
