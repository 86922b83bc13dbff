package host

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/core/platform"
	"github.com/stevedore-oci/stevedore/core/ref"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// InspectOptions tune Inspect.
type InspectOptions struct {
	// Platform picks the image of an index; nil means the host's.
	Platform *ocispec.Platform
	// Options are handed to the transport.
	Options map[string]string
	// NoTags skips listing the repository's tags.
	NoTags bool
	// DigestOnly resolves the reference and fills ImageInfo's Name, Digest
	// and RepoTags alone: no manifest or config is read, so an index
	// without this host's platform, or an artifact, is no error.
	DigestOnly bool
}

// LayerData describes one layer, as skopeo's LayersData.
type LayerData struct {
	MIMEType    string            `json:"MIMEType"`
	Digest      digest.Digest     `json:"Digest"`
	Size        int64             `json:"Size"`
	Annotations map[string]string `json:"Annotations"`
}

// ImageInfo is the skopeo-compatible summary Inspect returns.
type ImageInfo struct {
	Name          string            `json:"Name,omitempty"`
	Digest        digest.Digest     `json:"Digest"`
	RepoTags      []string          `json:"RepoTags"`
	Created       *time.Time        `json:"Created"`
	DockerVersion string            `json:"DockerVersion"`
	Labels        map[string]string `json:"Labels"`
	Architecture  string            `json:"Architecture"`
	Os            string            `json:"Os"`
	Variant       string            `json:"Variant,omitempty"`
	Layers        []digest.Digest   `json:"Layers"`
	LayersData    []LayerData       `json:"LayersData"`
	Env           []string          `json:"Env"`
}

// Inspected is everything Inspect read.
type Inspected struct {
	Info ImageInfo
	// TopRaw is the top-level manifest or index as stored.
	TopRaw []byte
	// Top describes TopRaw.
	Top ocispec.Descriptor
	// Manifest is the image manifest chosen (TopRaw unless it is an index).
	Manifest *manifest.Manifest
	// ConfigRaw is the image's config blob.
	ConfigRaw []byte
}

// dockerConfig holds the config fields skopeo reports that the OCI image
// config lacks.
type dockerConfig struct {
	ocispec.Image
	DockerVersion string `json:"docker_version"`
}

// Inspect reads an image's manifest and config.
func (h *Host) Inspect(ctx context.Context, image string, opts InspectOptions) (*Inspected, error) {
	ep, err := h.ParseEndpoint(ctx, image)
	if err != nil {
		return nil, err
	}
	src, err := h.open(ctx, ep, pluginapi.ModeRead, opts.Options)
	if err != nil {
		return nil, err
	}
	defer src.Close(context.WithoutCancel(ctx))
	out, err := inspect(ctx, src, ep, opts)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ep, err)
	}
	return out, nil
}

func inspect(ctx context.Context, src *endpoint, ep ref.Endpoint, opts InspectOptions) (*Inspected, error) {
	// The tag list does not depend on the image: it is read while the
	// image is, one round trip instead of two on a registry.
	var (
		tags    []string
		tagsErr error
		wg      sync.WaitGroup
	)
	tagsCtx, cancel := context.WithCancel(ctx)
	defer wg.Wait() // the endpoint is closed after inspect returns
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		tags, tagsErr = repoTags(tagsCtx, src, opts)
	}()
	var (
		top ocispec.Descriptor
		m   *manifest.Manifest
		err error
	)
	if opts.DigestOnly {
		top, err = src.Resolve(ctx, ep.Ref)
		err = src.wrap("resolve "+quote(ep.Ref), err)
	} else {
		top, m, err = resolveManifest(ctx, src, ep.Ref)
	}
	if err != nil {
		return nil, err
	}
	info := ImageInfo{Digest: top.Digest, RepoTags: []string{}, Labels: nil, Layers: []digest.Digest{}, LayersData: []LayerData{}}
	if ep.Transport == ref.Docker {
		info.Name = ep.Location
	}
	withTags := func() error {
		wg.Wait()
		info.RepoTags = append(info.RepoTags, tags...)
		return tagsErr
	}
	if opts.DigestOnly {
		if err := withTags(); err != nil {
			return nil, err
		}
		return &Inspected{Info: info, Top: top}, nil
	}
	out := &Inspected{TopRaw: m.Raw, Top: top}
	if m.IsIndex() {
		want := platform.Default()
		if opts.Platform != nil {
			want = *opts.Platform
		}
		sel := platform.Select(m.Manifests, []ocispec.Platform{want})
		if len(sel) == 0 {
			// As copy says it: what the index has, and what to give.
			var have []string
			for _, d := range m.Manifests {
				if d.Platform != nil {
					have = append(have, platform.Format(*d.Platform))
				}
			}
			has := "it has " + strings.Join(have, ", ")
			if len(have) == 0 {
				has = "its entries name no platform"
			}
			return nil, fmt.Errorf("index %s has no image for %s (%s); use --platform naming one of those: %w", m.Digest, platform.Format(want), has, core.ErrNotFound)
		}
		if m, err = fetchManifest(ctx, src, m.Manifests[sel[0]]); err != nil {
			return nil, err
		}
	}
	out.Manifest = m
	if m.IsIndex() {
		return nil, fmt.Errorf("index %s points at another index: %w", top.Digest, core.ErrUnsupported)
	}
	rc, err := src.GetBlob(ctx, m.Config, 0)
	if err != nil {
		return nil, src.wrap("get config "+m.Config.Digest.String(), err)
	}
	out.ConfigRaw, err = content.ReadAllVerified(rc, m.Config, content.MaxConfigSize)
	rc.Close()
	if err != nil {
		return nil, src.wrap("config "+m.Config.Digest.String(), err)
	}
	var cfg dockerConfig
	if m.Config.MediaType == manifest.OCIConfig || m.Config.MediaType == manifest.DockerConfig {
		if err := json.Unmarshal(out.ConfigRaw, &cfg); err != nil {
			return nil, fmt.Errorf("config %s: not an image config: %v: %w", m.Config.Digest, err, core.ErrInvalid)
		}
	}
	info.Created = cfg.Created
	info.DockerVersion = cfg.DockerVersion
	info.Labels = cfg.Config.Labels
	info.Env = cfg.Config.Env
	info.Architecture, info.Os, info.Variant = cfg.Architecture, cfg.OS, cfg.Variant
	for _, l := range m.Layers {
		info.Layers = append(info.Layers, l.Digest)
		info.LayersData = append(info.LayersData, LayerData{MIMEType: l.MediaType, Digest: l.Digest, Size: l.Size, Annotations: l.Annotations})
	}
	if err := withTags(); err != nil {
		return nil, err
	}
	out.Info = info
	return out, nil
}

// repoTags lists the repository's tags, sorted, unless opts.NoTags.
func repoTags(ctx context.Context, src *endpoint, opts InspectOptions) ([]string, error) {
	if opts.NoTags || !src.has(pluginapi.CapListTags) {
		return nil, nil
	}
	tags, err := src.Endpoint.(pluginapi.TagLister).ListTags(ctx)
	// Read beside an image that was found: a registry that does not know
	// its repository holds it untagged (distribution answers so).
	if err != nil && !errors.Is(err, core.ErrNotFound) {
		return nil, src.wrap("list tags", err)
	}
	sort.Strings(tags)
	return tags, nil
}

// TagList is what ListTags returns, as skopeo list-tags prints it.
type TagList struct {
	Repository string   `json:"Repository"`
	Tags       []string `json:"Tags"`
}

// ListTags lists the tags of a repository or layout. Any image reference in
// location is ignored.
func (h *Host) ListTags(ctx context.Context, location string, options map[string]string) (*TagList, error) {
	ep, err := h.ParseEndpoint(ctx, location)
	if err != nil {
		return nil, err
	}
	if ep.Transport == ref.Docker && ref.DockerNamesImage(location) {
		// As skopeo: a tag list is of a repository, and a reference
		// without one (docker://HOST:PORT) reads as a Docker Hub image.
		// (Other transports' parsers may add a default name or tag.)
		return nil, fmt.Errorf("list tags %s: name a repository, without a tag or digest (%q): %w", ep, ep.Ref, core.ErrInvalid)
	}
	src, err := h.open(ctx, ep, pluginapi.ModeRead, options)
	if err != nil {
		return nil, err
	}
	defer src.Close(context.WithoutCancel(ctx))
	if !src.has(pluginapi.CapListTags) {
		return nil, fmt.Errorf("list tags %s: transport %s cannot list tags: %w", ep, ep.Transport, core.ErrUnsupported)
	}
	tags, err := src.Endpoint.(pluginapi.TagLister).ListTags(ctx)
	if err != nil {
		return nil, src.wrap("list tags", err)
	}
	sort.Strings(tags)
	if tags == nil {
		tags = []string{}
	}
	return &TagList{Repository: ep.Location, Tags: tags}, nil
}

// RepositoryList is what ListRepositories returns.
type RepositoryList struct {
	// Location is what was listed, as given to Open.
	Location string `json:"Location"`
	// Repositories are locations the transport opens (for docker,
	// HOST/REPOSITORY), in lexical order.
	Repositories []string `json:"Repositories"`
}

// ListRepositories lists the repositories at or under location: for
// docker, a registry alone ("docker://127.0.0.1:5000") or a prefix
// ("docker://quay.io/acme"), read from the registry's catalog.
func (h *Host) ListRepositories(ctx context.Context, location string, options map[string]string) (*RepositoryList, error) {
	var ep ref.Endpoint
	if name, ok := strings.CutPrefix(location, "docker://"); ok {
		loc, err := ref.DockerPrefix(strings.TrimRight(name, "/")) // as sync reads a prefix
		if err != nil {
			return nil, fmt.Errorf("list repositories: %w", err)
		}
		ep = ref.Endpoint{Transport: ref.Docker, Location: loc}
	} else {
		var err error
		if ep, err = h.ParseEndpoint(ctx, location); err != nil {
			return nil, err
		}
		ep = ep.WithRef("")
	}
	src, err := h.openFor(ctx, ep, pluginapi.ModeRead, options, pluginapi.CapListRepositories)
	if err != nil {
		return nil, err
	}
	defer src.Close(context.WithoutCancel(ctx))
	locs, err := src.Endpoint.(pluginapi.RepositoryLister).ListRepositories(ctx)
	if err != nil {
		return nil, src.wrap("list repositories", err)
	}
	sort.Strings(locs)
	if locs == nil {
		locs = []string{}
	}
	return &RepositoryList{Location: ep.Location, Repositories: locs}, nil
}

// Delete removes a tag or a manifest by digest.
func (h *Host) Delete(ctx context.Context, image string, options map[string]string) error {
	ep, err := h.ParseEndpoint(ctx, image)
	if err != nil {
		return err
	}
	if ep.Ref == "" {
		return fmt.Errorf("delete %s: name a tag or digest to delete: %w", ep, core.ErrInvalid)
	}
	// Deleting the digest would remove every tag of the manifest.
	if err := ep.Unambiguous("delete"); err != nil {
		return err
	}
	// Opening for writing may create what it opens (an OCI layout, a
	// static tree's directory): the image is looked up for reading first,
	// so that deleting from a location that does not exist, or holds no
	// such image, leaves nothing behind. A transport that cannot be read
	// is left to its own Delete.
	if src, err := h.open(ctx, ep, pluginapi.ModeRead, options); err == nil {
		_, err = src.Resolve(ctx, ep.Ref)
		src.Close(context.WithoutCancel(ctx))
		if err != nil {
			return src.wrap("delete "+ep.Ref, err)
		}
	} else if !errors.Is(err, core.ErrUnsupported) {
		return err
	}
	dst, err := h.open(ctx, ep, pluginapi.ModeWrite, options)
	if err != nil {
		return err
	}
	defer dst.Close(context.WithoutCancel(ctx))
	if !dst.has(pluginapi.CapDelete) {
		return fmt.Errorf("delete %s: transport %s cannot delete: %w", ep, ep.Transport, core.ErrUnsupported)
	}
	if err := dst.Endpoint.(pluginapi.Deleter).Delete(ctx, ep.Ref); err != nil {
		return dst.wrap("delete "+ep.Ref, err)
	}
	if dst.has(pluginapi.CapCommit) {
		if err := dst.Endpoint.(pluginapi.Committer).Commit(ctx); err != nil {
			return dst.wrap("commit", err)
		}
	}
	return nil
}

// ManifestDigest returns the digest of a manifest file's bytes, as they are.
func ManifestDigest(path string) (digest.Digest, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("manifest-digest: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, content.MaxManifestSize+1))
	if err != nil {
		return "", fmt.Errorf("manifest-digest %s: %w", path, err)
	}
	if _, err := manifest.Parse(raw, ""); err != nil {
		return "", fmt.Errorf("manifest-digest %s: %w", path, err)
	}
	return digest.FromBytes(raw), nil
}

// RawManifest returns the top-level manifest or index of image exactly as
// stored, verified against its digest.
func (h *Host) RawManifest(ctx context.Context, image string, options map[string]string) ([]byte, error) {
	ep, err := h.ParseEndpoint(ctx, image)
	if err != nil {
		return nil, err
	}
	src, err := h.open(ctx, ep, pluginapi.ModeRead, options)
	if err != nil {
		return nil, err
	}
	defer src.Close(context.WithoutCancel(ctx))
	_, raw, err := resolveRaw(ctx, src, ep.Ref)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", ep, err)
	}
	return raw, nil
}
