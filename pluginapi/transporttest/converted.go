package transporttest

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/layer"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// maxServedBlob caps what the kit reads of one served blob: generated
// layers are far smaller, even once decompressed.
const maxServedBlob = 1 << 30

// check reads a back through src under ref and returns the descriptor src
// resolved ref to: the written one, compared byte for byte
// (checkArtifact), or for a format that converts what a conversion must
// keep (checkConverted).
func (k *kit) check(t *testing.T, src pluginapi.Source, a Artifact, ref string) ocispec.Descriptor {
	t.Helper()
	if !k.h.ConvertsManifests {
		checkArtifact(t, src, a, ref)
		return a.Top().Descriptor
	}
	ctx := context.Background()
	got, err := src.Resolve(ctx, ref)
	if err != nil {
		t.Fatalf("Resolve(%q): %v", ref, err)
	}
	checkConverted(t, src, a, got)
	if k.h.NoDigestRefs {
		return got
	}
	again, err := src.Resolve(ctx, got.Digest.String())
	if err != nil {
		t.Fatalf("Resolve of the served digest %s (from %q): %v", got.Digest, ref, err)
	}
	if again.Digest != got.Digest || again.Size != got.Size || again.MediaType != got.MediaType {
		t.Fatalf("Resolve(%s) = {%s %s %d}, want what %q resolved to", got.Digest, again.MediaType, again.Digest, again.Size, ref)
	}
	if written := a.Top().Descriptor; written.Digest != got.Digest {
		// The written manifest is not stored: its digest names nothing.
		_, err := src.Resolve(ctx, written.Digest.String())
		wantErr(t, "Resolve of the written (converted away) digest "+written.Digest.String(), err, core.ErrNotFound)
	}
	return got
}

// checkConverted checks that desc, served by src for a, is a conversion of
// a (see Harness.ConvertsManifests).
func checkConverted(t *testing.T, src pluginapi.Source, a Artifact, desc ocispec.Descriptor) {
	t.Helper()
	switch a := a.(type) {
	case Image:
		checkConvertedImage(t, src, a, desc)
	case Index:
		children := servedManifests(t, src, desc)
		if len(children) != len(a.Images) {
			t.Fatalf("served index %s lists %d manifests, want %d", desc.Digest, len(children), len(a.Images))
		}
		for i, c := range children {
			want := a.Images[i].Platform
			if c.Platform == nil || c.Platform.OS != want.OS || c.Platform.Architecture != want.Architecture || c.Platform.Variant != want.Variant {
				t.Fatalf("served index %s: manifests[%d] platform %+v, want %+v", desc.Digest, i, c.Platform, want)
			}
			checkConvertedImage(t, src, a.Images[i], c)
		}
	default:
		t.Fatalf("transporttest: unknown artifact %T", a)
	}
}

// servedManifest fetches the manifest desc names, checks it against desc
// and parses it.
func servedManifest(t *testing.T, src pluginapi.Source, desc ocispec.Descriptor) (*manifest.Manifest, []byte) {
	t.Helper()
	raw, err := src.GetManifest(context.Background(), desc)
	if err != nil {
		t.Fatalf("GetManifest %s: %v", desc.Digest, err)
	}
	if err := content.VerifyBytes(raw, desc); err != nil {
		t.Fatalf("GetManifest %s: served bytes do not match the descriptor: %v", desc.Digest, err)
	}
	m, err := manifest.Parse(raw, desc.MediaType)
	if err != nil {
		t.Fatalf("GetManifest %s: %v", desc.Digest, err)
	}
	return m, raw
}

// servedManifests returns the entries of the served index desc.
func servedManifests(t *testing.T, src pluginapi.Source, desc ocispec.Descriptor) []ocispec.Descriptor {
	t.Helper()
	if !manifest.IsIndex(desc.MediaType) {
		t.Fatalf("served %s has media type %q, want an index", desc.Digest, desc.MediaType)
	}
	m, _ := servedManifest(t, src, desc)
	return m.Manifests
}

// servedImage fetches the image manifest desc names and every blob it
// lists, each checked against its served descriptor.
func servedImage(t *testing.T, src pluginapi.Source, desc ocispec.Descriptor) Image {
	t.Helper()
	if !manifest.IsImageManifest(desc.MediaType) {
		t.Fatalf("served %s has media type %q, want an image manifest", desc.Digest, desc.MediaType)
	}
	m, raw := servedManifest(t, src, desc)
	im := Image{Manifest: Blob{Descriptor: desc, Data: raw}, Config: servedBlob(t, src, m.Config)}
	for _, l := range m.Layers {
		im.Layers = append(im.Layers, servedBlob(t, src, l))
	}
	return im
}

// servedBlob reads a whole blob from src, verified against desc.
func servedBlob(t *testing.T, src pluginapi.Source, desc ocispec.Descriptor) Blob {
	t.Helper()
	rc, err := src.GetBlob(context.Background(), desc, 0)
	if err != nil {
		t.Fatalf("GetBlob %s: %v", desc.Digest, err)
	}
	defer rc.Close()
	data, err := content.ReadAllVerified(rc, desc, maxServedBlob)
	if err != nil {
		t.Fatalf("GetBlob %s: served content does not match the served descriptor: %v", desc.Digest, err)
	}
	return Blob{Descriptor: desc, Data: data}
}

// checkConvertedImage checks that desc, served by src, holds im's config
// and im's layers, converted.
func checkConvertedImage(t *testing.T, src pluginapi.Source, im Image, desc ocispec.Descriptor) {
	t.Helper()
	got := servedImage(t, src, desc)
	if c := got.Config.Descriptor; c.Digest != im.Config.Descriptor.Digest || c.Size != im.Config.Descriptor.Size {
		t.Fatalf("served manifest %s: config %s (%d bytes), want the written %s (%d bytes)", desc.Digest, c.Digest, c.Size, im.Config.Descriptor.Digest, im.Config.Descriptor.Size)
	}
	if len(got.Layers) != len(im.Layers) {
		t.Fatalf("served manifest %s has %d layers, want %d", desc.Digest, len(got.Layers), len(im.Layers))
	}
	for i, l := range got.Layers {
		want := uncompressedDigest(t, "written layer "+im.Layers[i].Descriptor.Digest.String(), im.Layers[i].Data)
		if got := uncompressedDigest(t, "served layer "+l.Descriptor.Digest.String(), l.Data); got != want {
			t.Fatalf("served manifest %s: layer %d (%s) uncompresses to %s, want the written layer's %s", desc.Digest, i, l.Descriptor.Digest, got, want)
		}
		for _, off := range []int64{1, l.Descriptor.Size / 2, l.Descriptor.Size} {
			checkBlob(t, src, l, off)
		}
	}
}

// uncompressedDigest is the digest of data decompressed (gzip, zstd) or of
// data itself when it is not compressed: for a layer, its diff ID.
func uncompressedDigest(t *testing.T, what string, data []byte) digest.Digest {
	t.Helper()
	rc, _, err := layer.Decompress(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	defer rc.Close()
	d := digest.SHA256.Digester()
	if _, err := io.Copy(d.Hash(), rc); err != nil {
		t.Fatalf("%s: decompress: %v", what, err)
	}
	return d.Digest()
}
