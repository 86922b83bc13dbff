package syncspec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"go.yaml.in/yaml/v3"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/ref"
	"github.com/stevedore-oci/stevedore/host"
)

// SkopeoRegistry is one registry of skopeo's sync YAML.
type SkopeoRegistry struct {
	// Images maps a repository to the tags or digests to copy; an empty
	// list copies every tag.
	Images map[string][]string `yaml:"images"`
	// ImagesByTagRegex maps a repository to a regex its tags must match
	// anywhere (skopeo does not anchor it).
	ImagesByTagRegex map[string]string `yaml:"images-by-tag-regex"`
	// ImagesBySemver maps a repository to a semver constraint.
	ImagesBySemver map[string]string `yaml:"images-by-semver"`
	Credentials    struct {
		Username string `yaml:"username"`
		Password string `yaml:"password"`
	} `yaml:"credentials"`
	TLSVerify *bool  `yaml:"tls-verify"`
	CertDir   string `yaml:"cert-dir"`
}

// parseSkopeo reads skopeo's format: registry -> images. Targets are
// opts.Target joined with the repository's last path element, or with
// its full name when opts.Scoped, as skopeo names them.
func parseSkopeo(data []byte, opts Options) (*Result, error) {
	if opts.Target == "" {
		return nil, fmt.Errorf("skopeo-format sync file: give the destination (e.g. stevedore sync -f FILE registry.local/mirror): %w", core.ErrInvalid)
	}
	var cfg map[string]SkopeoRegistry
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("skopeo-format sync file: %s: %w", yamlError(err), core.ErrInvalid)
	}
	// The destination prefix: a docker registry path, or a location of
	// another transport (a directory holding one layout per repository).
	dockerPrefix := strings.TrimPrefix(opts.Target, "docker://")
	var other *ref.Endpoint
	if t, rest, ok := strings.Cut(opts.Target, ":"); ok && !strings.HasPrefix(opts.Target, "docker://") && isTransport(t, rest) {
		te, err := ParseEndpoint(opts.Target)
		if err != nil {
			return nil, fmt.Errorf("destination: %w", err)
		}
		if te.Image {
			return nil, fmt.Errorf("destination %q: name a directory, not an image: %w", opts.Target, core.ErrInvalid)
		}
		other = &te.Endpoint
	}
	// skopeo reads credentials literally: no ${VAR} expansion.
	sopts := opts
	sopts.LookupEnv = func(name string) (string, bool) { return "${" + name + "}", true }
	res := &Result{Format: FormatSkopeo}
	registries := make([]string, 0, len(cfg))
	for r := range cfg {
		registries = append(registries, r)
	}
	sort.Strings(registries)
	for _, regName := range registries {
		if strings.Contains(regName, "://") {
			// Read as image "https:" with a path, it failed as "name a
			// repository; tags go in the list".
			return nil, fmt.Errorf("registry %s: name it as in references (registry.example:5000), without a scheme: %w", regName, core.ErrInvalid)
		}
		reg := cfg[regName]
		s := opts.Defaults
		if reg.Credentials.Username != "" || reg.Credentials.Password != "" {
			s.SourceCreds = reg.Credentials.Username + ":" + reg.Credentials.Password
		}
		if reg.TLSVerify != nil {
			s.SourceTLSVerify = reg.TLSVerify
		}
		if reg.CertDir != "" {
			s.SourceCertDir = reg.CertDir
		}
		add := func(repo string, kind host.SyncKind, srcRef string, filter host.TagFilter) error {
			src, err := ParseEndpoint(regName + "/" + repo)
			if err != nil {
				return fmt.Errorf("registry %s, image %s: %w", regName, repo, err)
			}
			if src.Image {
				return fmt.Errorf("registry %s, image %s: name a repository; tags go in the list: %w", regName, repo, core.ErrInvalid)
			}
			suffix := path.Base(src.Location)
			if opts.Scoped {
				suffix = src.Location
			}
			var dst ref.Endpoint
			if other != nil {
				dst = ref.Endpoint{Transport: other.Transport, Location: strings.TrimRight(other.Location, "/") + "/" + suffix}
			} else {
				d, err := ParseEndpoint(joinPrefix(dockerPrefix, suffix))
				if err != nil {
					return fmt.Errorf("destination for %s: %w", src.Location, err)
				}
				dst = d.Endpoint
			}
			j := host.SyncJob{Name: regName + "/" + repo, Kind: kind, Source: src.Endpoint.WithRef(srcRef), Target: dst}
			if err := s.apply(&j, sopts); err != nil {
				return fmt.Errorf("registry %s: %w", regName, err)
			}
			if filter != nil {
				j.Tags = filter
			}
			if kind == host.SyncImage {
				j.Tags = nil
			}
			res.Jobs = append(res.Jobs, j)
			return nil
		}
		for _, repo := range sortedKeys(reg.Images) {
			refs := reg.Images[repo]
			if len(refs) == 0 {
				if err := add(repo, host.SyncRepository, "", nil); err != nil {
					return nil, err
				}
				continue
			}
			for _, r := range refs {
				if !ref.IsDigest(r) && !ref.ValidTag(r) {
					return nil, fmt.Errorf("registry %s, image %s: %q is neither a tag nor a digest: %w", regName, repo, r, core.ErrInvalid)
				}
				if err := add(repo, host.SyncImage, r, nil); err != nil {
					return nil, err
				}
			}
		}
		for _, repo := range sortedKeys(reg.ImagesByTagRegex) {
			re, err := regexp.Compile(reg.ImagesByTagRegex[repo])
			if err != nil {
				return nil, fmt.Errorf("registry %s, images-by-tag-regex %s: %v: %w", regName, repo, err, core.ErrInvalid)
			}
			if err := add(repo, host.SyncRepository, "", regexFilter{re}); err != nil {
				return nil, err
			}
		}
		for _, repo := range sortedKeys(reg.ImagesBySemver) {
			c, err := semver.NewConstraint(reg.ImagesBySemver[repo])
			if err != nil {
				return nil, fmt.Errorf("registry %s, images-by-semver %s: %v: %w", regName, repo, err, core.ErrInvalid)
			}
			if err := add(repo, host.SyncRepository, "", &Filter{constraint: c}); err != nil {
				return nil, err
			}
		}
	}
	if len(res.Jobs) == 0 {
		return nil, fmt.Errorf("skopeo-format sync file lists no images: %w", core.ErrInvalid)
	}
	return res, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
