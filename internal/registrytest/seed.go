package registrytest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is an image Seed pushed.
type Image struct {
	Manifest    ocispec.Descriptor
	ManifestRaw []byte
	Config      ocispec.Descriptor
	Layers      []ocispec.Descriptor
	// Blobs holds the content of the config and every layer by digest.
	Blobs map[digest.Digest][]byte
}

// NewImage builds (without pushing) an OCI image with layers random layers of
// layerSize bytes each (media type application/vnd.oci.image.layer.v1.tar;
// the bytes are not a tar).
func NewImage(layers, layerSize int) (*Image, error) {
	var blobs [][]byte
	for i := 0; i < layers; i++ {
		b := make([]byte, layerSize)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		blobs = append(blobs, b)
	}
	return NewImageFromLayers(ocispec.MediaTypeImageLayer, blobs...)
}

// NewImageFromLayers builds an OCI image whose layers are the given blobs,
// all with mediaType.
func NewImageFromLayers(mediaType string, layers ...[]byte) (*Image, error) {
	img := &Image{Blobs: map[digest.Digest][]byte{}}
	for _, b := range layers {
		d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
		img.Layers = append(img.Layers, d)
		img.Blobs[d.Digest] = b
	}
	var diffIDs []digest.Digest
	for _, l := range img.Layers {
		diffIDs = append(diffIDs, l.Digest)
	}
	cfg, err := json.Marshal(ocispec.Image{
		Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	})
	if err != nil {
		return nil, err
	}
	img.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	img.Blobs[img.Config.Digest] = cfg
	layerList := img.Layers
	if layerList == nil {
		layerList = []ocispec.Descriptor{}
	}
	raw, err := json.Marshal(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    img.Config,
		Layers:    layerList,
	})
	if err != nil {
		return nil, err
	}
	img.ManifestRaw = raw
	img.Manifest = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	return img, nil
}

// Seed pushes a random image to repository:tag directly to the registry
// (bypassing the proxy and the code under test) and returns it.
func (r *Registry) Seed(repository, tag string, layers, layerSize int) *Image {
	r.t.Helper()
	img, err := NewImage(layers, layerSize)
	if err != nil {
		r.t.Fatalf("registrytest: seed: %v", err)
	}
	if err := r.Push(repository, tag, img); err != nil {
		r.t.Fatalf("registrytest: seed %s:%s: %v", repository, tag, err)
	}
	return img
}

// Push uploads img's blobs and manifest to repository and tags it (tag ""
// pushes by digest only), straight to the registry.
func (r *Registry) Push(repository, tag string, img *Image) error {
	for d, b := range img.Blobs {
		if err := r.PushBlob(repository, d, b); err != nil {
			return err
		}
	}
	ref := tag
	if ref == "" {
		ref = img.Manifest.Digest.String()
	}
	return r.PushManifest(repository, ref, img.Manifest.MediaType, img.ManifestRaw)
}

// PushBlob uploads one blob (POST, then PUT with the content:
// docker-registry 2.8 has no single-POST upload).
func (r *Registry) PushBlob(repository string, d digest.Digest, b []byte) error {
	resp, err := r.do(http.MethodPost, "/v2/"+repository+"/blobs/uploads/", nil, nil, repository)
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		return fmt.Errorf("start upload of %s to %s: %s", d, repository, resp.Status)
	}
	u, err := url.Parse(loc)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("digest", d.String())
	u.RawQuery = q.Encode()
	resp, err = r.do(http.MethodPut, u.RequestURI(), b, http.Header{"Content-Type": {"application/octet-stream"}}, repository)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("push blob %s to %s: %s: %s", d, repository, resp.Status, msg)
	}
	return nil
}

// PushManifest puts raw under reference (a tag or its digest).
func (r *Registry) PushManifest(repository, reference, mediaType string, raw []byte) error {
	resp, err := r.do(http.MethodPut, "/v2/"+repository+"/manifests/"+reference, raw, http.Header{"Content-Type": {mediaType}}, repository)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("push manifest %s:%s: %s: %s", repository, reference, resp.Status, msg)
	}
	return nil
}

// HasBlob asks the registry directly whether repository holds blob d.
func (r *Registry) HasBlob(repository string, d digest.Digest) (bool, error) {
	resp, err := r.do(http.MethodHead, "/v2/"+repository+"/blobs/"+d.String(), nil, nil, repository)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("HEAD blob %s in %s: %s", d, repository, resp.Status)
}

// GetManifest fetches repository's manifest by reference directly, returning
// its bytes and Content-Type (status error for anything but 200).
func (r *Registry) GetManifest(repository, reference string) ([]byte, string, error) {
	accept := http.Header{"Accept": {
		ocispec.MediaTypeImageIndex, ocispec.MediaTypeImageManifest,
		"application/vnd.docker.distribution.manifest.list.v2+json",
		"application/vnd.docker.distribution.manifest.v2+json",
	}}
	resp, err := r.do(http.MethodGet, "/v2/"+repository+"/manifests/"+reference, nil, accept, repository)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET manifest %s:%s: %s", repository, reference, resp.Status)
	}
	return b, resp.Header.Get("Content-Type"), nil
}
