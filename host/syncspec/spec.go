package syncspec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"

	"github.com/distribution/reference"
	"go.yaml.in/yaml/v3"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/platform"
	"github.com/stevedore-oci/stevedore/core/ref"
	"github.com/stevedore-oci/stevedore/host"
)

// Formats Parse recognises.
const (
	FormatStevedore = "stevedore"
	FormatSkopeo    = "skopeo"
)

// Entry types.
const (
	TypeImage          = "image"
	TypeRepository     = "repository"
	TypeRegistryPrefix = "registry-prefix"
)

// File is stevedore's sync file.
type File struct {
	// Version is 1 (the default).
	Version int `yaml:"version,omitempty" json:"version,omitempty"`
	// Defaults apply to every entry that does not set the same key.
	Defaults Settings `yaml:"defaults,omitempty" json:"defaults,omitempty"`
	// Registries sets request limits per registry name.
	Registries map[string]host.RegistryLimit `yaml:"registries,omitempty" json:"registries,omitempty"`
	// Sync lists what to mirror.
	Sync []Entry `yaml:"sync" json:"sync"`
}

// Settings are the keys an entry shares with defaults.
type Settings struct {
	// Platforms copies these platforms of an index (a smaller index when
	// several); the default is every platform, the index kept as is.
	Platforms []string `yaml:"platforms,omitempty" json:"platforms,omitempty"`
	// PlatformsPickOnly: Platforms pick from indexes alone (skopeo's
	// --override-os/--override-arch); see host.CopyOptions. Not in files.
	PlatformsPickOnly bool `yaml:"-" json:"-"`
	// All false without platforms copies the host's platform only.
	All *bool `yaml:"all,omitempty" json:"all,omitempty"`
	// Jobs bounds blobs in flight per entry.
	Jobs int `yaml:"jobs,omitempty" json:"jobs,omitempty"`
	// Referrers copies signatures, SBOMs and other referrers along.
	Referrers *bool `yaml:"referrers,omitempty" json:"referrers,omitempty"`
	// Immutable tags are skipped when the target has them at all.
	Immutable []string `yaml:"immutable,omitempty" json:"immutable,omitempty"`
	// Tags filters repository tags.
	Tags *TagRules `yaml:"tags,omitempty" json:"tags,omitempty"`
	// Transport settings for both sides; the source- and target- forms
	// override them for one side. Creds is USER:PASSWORD; ${VAR} is
	// replaced by the environment variable VAR.
	TLSVerify       *bool  `yaml:"tls-verify,omitempty" json:"tls-verify,omitempty"`
	Creds           string `yaml:"creds,omitempty" json:"creds,omitempty"`
	CertDir         string `yaml:"cert-dir,omitempty" json:"cert-dir,omitempty"`
	Authfile        string `yaml:"authfile,omitempty" json:"authfile,omitempty"`
	SourceTLSVerify *bool  `yaml:"source-tls-verify,omitempty" json:"source-tls-verify,omitempty"`
	SourceCreds     string `yaml:"source-creds,omitempty" json:"source-creds,omitempty"`
	SourceCertDir   string `yaml:"source-cert-dir,omitempty" json:"source-cert-dir,omitempty"`
	SourceAuthfile  string `yaml:"source-authfile,omitempty" json:"source-authfile,omitempty"`
	TargetTLSVerify *bool  `yaml:"target-tls-verify,omitempty" json:"target-tls-verify,omitempty"`
	TargetCreds     string `yaml:"target-creds,omitempty" json:"target-creds,omitempty"`
	TargetCertDir   string `yaml:"target-cert-dir,omitempty" json:"target-cert-dir,omitempty"`
	TargetAuthfile  string `yaml:"target-authfile,omitempty" json:"target-authfile,omitempty"`
}

// Entry is one item of sync:.
type Entry struct {
	// Source and Target are endpoints: a bare name is docker://
	// (registry.example/team/app), or any transport (oci:/srv/layout).
	Source string `yaml:"source" json:"source"`
	Target string `yaml:"target" json:"target"`
	// Type is image, repository or registry-prefix; by default image
	// when the source names a tag or digest, repository otherwise.
	Type string `yaml:"type,omitempty" json:"type,omitempty"`
	// Repositories lists, for registry-prefix, the repositories under
	// the source prefix to mirror under the target prefix.
	Repositories []string `yaml:"repositories,omitempty" json:"repositories,omitempty"`
	Settings     `yaml:",inline"`
}

// Options tune Parse.
type Options struct {
	// Target is the destination prefix for skopeo's format (skopeo sync's
	// DESTINATION argument, e.g. "registry.local/mirror" or
	// "docker://registry.local/mirror"). It must be empty for stevedore's
	// format, whose entries name their targets.
	Target string
	// Scoped prefixes skopeo-format targets with the full source
	// repository name (skopeo's --scoped).
	Scoped bool
	// SrcOptions and DstOptions are base transport options (command-line
	// flags); the file's settings override them.
	SrcOptions, DstOptions map[string]string
	// Defaults are settings from the command line: under the file's
	// defaults for stevedore's format, for every job of skopeo's.
	Defaults Settings
	// LookupEnv resolves ${VAR}; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Result is a parsed sync file.
type Result struct {
	Format string
	Jobs   []host.SyncJob
	// Limits are the per-registry request limits of the file.
	Limits map[string]host.RegistryLimit
}

// Load reads and parses a sync file.
func Load(path string, opts Options) (*Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sync file: %w", err)
	}
	res, err := Parse(data, opts)
	if err != nil {
		return nil, fmt.Errorf("sync file %s: %w", path, err)
	}
	return res, nil
}

// stevedoreKeys are the top-level keys of stevedore's format; a file with
// none of them is read as skopeo's (whose top-level keys are registries).
var stevedoreKeys = map[string]bool{"version": true, "defaults": true, "registries": true, "sync": true}

// DetectFormat tells the two formats apart by their top-level keys.
func DetectFormat(data []byte) (string, error) {
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		return "", fmt.Errorf("not YAML: %s: %w", yamlError(err), core.ErrInvalid)
	}
	if len(top) == 0 {
		return "", fmt.Errorf("empty sync file: %w", core.ErrInvalid)
	}
	for k := range top {
		if stevedoreKeys[k] {
			return FormatStevedore, nil
		}
	}
	return FormatSkopeo, nil
}

// Parse reads a sync file in either format.
func Parse(data []byte, opts Options) (*Result, error) {
	format, err := DetectFormat(data)
	if err != nil {
		return nil, err
	}
	if format == FormatSkopeo {
		return parseSkopeo(data, opts)
	}
	if opts.Target != "" {
		return nil, fmt.Errorf("a destination argument is only for skopeo-format files; stevedore's entries name their target: %w", core.ErrInvalid)
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", yamlError(err), core.ErrInvalid)
	}
	return f.Jobs(opts)
}

// yamlError is a YAML decoding error on one line: yaml.v3 lists type errors
// one per line under "yaml: unmarshal errors:", and quotes values with their
// line breaks.
func yamlError(err error) string {
	escape := strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		parts := make([]string, len(te.Errors))
		for i, e := range te.Errors {
			parts[i] = escape(plainTypeError(strings.TrimSpace(e)))
		}
		return "yaml: " + strings.Join(parts, "; ")
	}
	return escape(err.Error())
}

// yaml.v3's type errors name Go types ("field tagz not found in type
// syncspec.Entry", "cannot unmarshal !!str `three` into int"), which say
// nothing to someone writing the file.
var (
	unknownFieldRE = regexp.MustCompile(`^(line \d+: )?field (.+) not found in type (\S+)$`)
	wrongTypeRE    = regexp.MustCompile("^(line \\d+: )?cannot unmarshal !!(\\w+)( `.*`)? into (\\S+)$")
	yamlStructs    = map[string]string{
		"syncspec.File": "the file", "syncspec.Entry": "a sync entry", "syncspec.Settings": "defaults",
		"syncspec.TagRules": "tags", "host.RegistryLimit": "a registry's limits", "syncspec.SkopeoRegistry": "a registry",
	}
	yamlTags = map[string]string{"str": "a string", "int": "a number", "float": "a number", "bool": "true or false", "seq": "a list", "map": "a mapping", "null": "nothing"}
)

func plainTypeError(e string) string {
	if m := unknownFieldRE.FindStringSubmatch(e); m != nil {
		where := ""
		if s, ok := yamlStructs[m[3]]; ok {
			where = " in " + s
		}
		return fmt.Sprintf("%sunknown key %q%s", m[1], m[2], where)
	}
	if m := wrongTypeRE.FindStringSubmatch(e); m != nil {
		got, ok := yamlTags[m[2]]
		if !ok {
			got = "!!" + m[2]
		}
		return fmt.Sprintf("%swant %s, got %s%s", m[1], goKind(m[4]), got, m[3])
	}
	return e
}

// goKind says in words what a Go type holds.
func goKind(t string) string {
	t = strings.TrimLeft(t, "*")
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.HasPrefix(t, "struct"), strings.Contains(t, "."):
		return "a mapping"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"), strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	}
	return t
}

// Jobs turns the file into sync jobs.
func (f *File) Jobs(opts Options) (*Result, error) {
	if f.Version != 0 && f.Version != 1 {
		return nil, fmt.Errorf("version %d: this stevedore reads version 1: %w", f.Version, core.ErrInvalid)
	}
	if len(f.Sync) == 0 {
		return nil, fmt.Errorf("sync: lists nothing to mirror: %w", core.ErrInvalid)
	}
	res := &Result{Format: FormatStevedore, Limits: f.Registries}
	for name, l := range f.Registries {
		if l.MaxConcurrent < 0 || l.RequestsPerSecond < 0 || l.Burst < 0 {
			return nil, fmt.Errorf("registries.%s: limits must not be negative: %w", name, core.ErrInvalid)
		}
		if name == "" || strings.Contains(name, "/") {
			// A URL or a repository matches no registry: the limit would
			// silently apply to nothing.
			return nil, fmt.Errorf("registries.%s: want a registry name as in references (registry.local:5000, docker.io), without a scheme or a path: %w", name, core.ErrInvalid)
		}
	}
	for i, e := range f.Sync {
		jobs, err := e.jobs(f.Defaults.merge(opts.Defaults), opts)
		if err != nil {
			return nil, fmt.Errorf("sync[%d] (source %q): %w", i, e.Source, err)
		}
		for k := range jobs {
			jobs[k].Name = fmt.Sprintf("sync[%d]", i)
		}
		res.Jobs = append(res.Jobs, jobs...)
	}
	return res, nil
}

// merge fills what s leaves unset from d.
func (s Settings) merge(d Settings) Settings {
	if s.Platforms == nil {
		s.Platforms, s.PlatformsPickOnly = d.Platforms, d.PlatformsPickOnly
	}
	if s.All == nil {
		s.All = d.All
	}
	if s.Jobs == 0 {
		s.Jobs = d.Jobs
	}
	if s.Referrers == nil {
		s.Referrers = d.Referrers
	}
	if s.Immutable == nil {
		s.Immutable = d.Immutable
	}
	if s.Tags == nil {
		s.Tags = d.Tags
	}
	str := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	bl := func(p **bool, v *bool) {
		if *p == nil {
			*p = v
		}
	}
	bl(&s.TLSVerify, d.TLSVerify)
	str(&s.Creds, d.Creds)
	str(&s.CertDir, d.CertDir)
	str(&s.Authfile, d.Authfile)
	bl(&s.SourceTLSVerify, d.SourceTLSVerify)
	str(&s.SourceCreds, d.SourceCreds)
	str(&s.SourceCertDir, d.SourceCertDir)
	str(&s.SourceAuthfile, d.SourceAuthfile)
	bl(&s.TargetTLSVerify, d.TargetTLSVerify)
	str(&s.TargetCreds, d.TargetCreds)
	str(&s.TargetCertDir, d.TargetCertDir)
	str(&s.TargetAuthfile, d.TargetAuthfile)
	return s
}

// envRef matches ${VAR}; compiled on first use (every command links this).
var envRef = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
})

// expand replaces ${VAR}; a lone $ is kept (passwords may hold one).
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	var missing []string
	re := envRef()
	out := re.ReplaceAllStringFunc(s, func(m string) string {
		name := re.FindStringSubmatch(m)[1]
		v, ok := lookup(name)
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("environment variable %s is not set: %w", strings.Join(missing, ", "), core.ErrInvalid)
	}
	return out, nil
}

func copyOpts(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+4)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// transportOptions applies one side's settings over base.
func transportOptions(base map[string]string, tls *bool, creds, certDir, authfile string, lookup func(string) (string, bool)) (map[string]string, error) {
	o := copyOpts(base)
	if tls != nil {
		o["tls-verify"] = fmt.Sprint(*tls)
	}
	if creds != "" {
		c, err := expand(creds, lookup)
		if err != nil {
			return nil, fmt.Errorf("creds: %w", err)
		}
		if u, _, ok := strings.Cut(c, ":"); !ok || u == "" {
			return nil, fmt.Errorf("creds must be USER:PASSWORD: %w", core.ErrInvalid)
		}
		o["creds"] = c
		delete(o, "no-creds")
		delete(o, "registry-token")
	}
	if certDir != "" {
		o["cert-dir"] = certDir
	}
	if authfile != "" {
		o["authfile"] = authfile
		if creds == "" {
			// The file names where this side's credentials are: the
			// command line's (defaults) would be used instead of it.
			delete(o, "creds")
			delete(o, "no-creds")
			delete(o, "registry-token")
		}
	}
	return o, nil
}

func firstBool(a, b *bool) *bool {
	if a != nil {
		return a
	}
	return b
}

func firstStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// jobSettings turns merged settings into the parts of a job they fill.
func (s Settings) apply(j *host.SyncJob, opts Options) error {
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	for _, p := range s.Platforms {
		for _, one := range strings.Split(p, ",") {
			pl, err := platform.Parse(strings.TrimSpace(one))
			if err != nil {
				return fmt.Errorf("platforms: %w", err)
			}
			j.Platforms = append(j.Platforms, pl)
		}
	}
	j.PlatformsPickOnly = s.PlatformsPickOnly
	switch {
	case len(j.Platforms) > 0:
		if s.All != nil && *s.All {
			return fmt.Errorf("all: true and platforms exclude each other: %w", core.ErrInvalid)
		}
	case s.All == nil || *s.All:
		// A mirror keeps indexes whole, digests and all.
		j.All = true
	}
	if s.Jobs < 0 {
		return fmt.Errorf("jobs %d: want 1 or more: %w", s.Jobs, core.ErrInvalid)
	}
	j.Jobs = s.Jobs
	j.Referrers = s.Referrers != nil && *s.Referrers
	imm, err := Immutable(s.Immutable)
	if err != nil {
		return err
	}
	j.Immutable = imm
	f, err := NewFilter(s.Tags)
	if err != nil {
		return err
	}
	if f != nil {
		j.Tags = f
	}
	j.SrcOptions, err = transportOptions(opts.SrcOptions, firstBool(s.SourceTLSVerify, s.TLSVerify),
		firstStr(s.SourceCreds, s.Creds), firstStr(s.SourceCertDir, s.CertDir), firstStr(s.SourceAuthfile, s.Authfile), lookup)
	if err != nil {
		return fmt.Errorf("source %w", err)
	}
	j.DstOptions, err = transportOptions(opts.DstOptions, firstBool(s.TargetTLSVerify, s.TLSVerify),
		firstStr(s.TargetCreds, s.Creds), firstStr(s.TargetCertDir, s.CertDir), firstStr(s.TargetAuthfile, s.Authfile), lookup)
	if err != nil {
		return fmt.Errorf("target %w", err)
	}
	return nil
}

func (e Entry) jobs(defaults Settings, opts Options) ([]host.SyncJob, error) {
	if e.Source == "" || e.Target == "" {
		return nil, fmt.Errorf("source and target are required: %w", core.ErrInvalid)
	}
	s := e.Settings.merge(defaults)
	var jobs []host.SyncJob
	switch e.Type {
	case TypeRegistryPrefix:
		if len(e.Repositories) == 0 {
			// The source's catalog names them when the sync runs.
			src, err := parsePrefix(e.Source)
			if err != nil {
				return nil, fmt.Errorf("registry-prefix source: %w", err)
			}
			dst, err := parsePrefix(e.Target)
			if err != nil {
				return nil, fmt.Errorf("registry-prefix target: %w", err)
			}
			jobs = append(jobs, host.SyncJob{Kind: host.SyncPrefix, Source: src, Target: dst})
		}
		for _, r := range e.Repositories {
			r = strings.Trim(r, "/")
			src, err := ParseEndpoint(joinPrefix(e.Source, r))
			if err != nil {
				return nil, err
			}
			dst, err := ParseEndpoint(joinPrefix(e.Target, r))
			if err != nil {
				return nil, err
			}
			if src.Image || dst.Image {
				return nil, fmt.Errorf("registry-prefix repository %q: name repositories, not images: %w", r, core.ErrInvalid)
			}
			jobs = append(jobs, host.SyncJob{Kind: host.SyncRepository, Source: src.Endpoint, Target: dst.Endpoint})
		}
	case "", TypeImage, TypeRepository:
		if len(e.Repositories) > 0 {
			return nil, fmt.Errorf("repositories: is for type registry-prefix: %w", core.ErrInvalid)
		}
		src, err := ParseEndpoint(e.Source)
		if err != nil {
			return nil, err
		}
		dst, err := ParseEndpoint(e.Target)
		if err != nil {
			return nil, err
		}
		if err := dst.Unambiguous("target"); err != nil {
			return nil, err
		}
		kind := host.SyncRepository
		if e.Type == TypeImage || (e.Type == "" && src.Image) {
			kind = host.SyncImage
		}
		switch kind {
		case host.SyncImage:
			if !src.Image {
				if src.Transport != ref.Docker {
					// oci:DIR alone is the layout's only image.
					break
				}
				src.Ref = "latest"
			}
		case host.SyncRepository:
			if src.Image {
				return nil, fmt.Errorf("type repository: source %q names an image; drop the tag or use type image: %w", e.Source, core.ErrInvalid)
			}
			if dst.Image {
				return nil, fmt.Errorf("type repository: target %q names an image; name a repository: %w", e.Target, core.ErrInvalid)
			}
		}
		jobs = append(jobs, host.SyncJob{Kind: kind, Source: src.Endpoint, Target: dst.Endpoint})
	default:
		return nil, fmt.Errorf("type %q: want image, repository or registry-prefix: %w", e.Type, core.ErrInvalid)
	}
	for i := range jobs {
		if err := s.apply(&jobs[i], opts); err != nil {
			return nil, err
		}
		if jobs[i].Kind == host.SyncImage {
			if e.Tags != nil {
				return nil, fmt.Errorf("tags: filters repositories; this entry is one image: %w", core.ErrInvalid)
			}
			jobs[i].Tags = nil // defaults' filters are for repositories
		}
	}
	return jobs, nil
}

// joinPrefix joins a registry prefix ("docker://reg/team", "reg",
// "oci:/srv/mirror") and a repository name.
func joinPrefix(prefix, repo string) string {
	if rest, ok := strings.CutPrefix(prefix, ref.Static+":"); ok {
		// The repositories of a static tree are named after its path.
		return ref.Endpoint{Transport: ref.Static, Location: rest}.Under(repo).String()
	}
	return strings.TrimRight(prefix, "/") + "/" + repo
}

// Endpoint is a parsed source or target.
type Endpoint struct {
	ref.Endpoint
	// Image is true when the string named an image (a tag or digest), not
	// only a repository or layout.
	Image bool
}

// ParseEndpoint parses a sync source or target: a docker name without
// transport ("registry.example/app", "alpine:3.20"), docker://NAME, or
// TRANSPORT:LOCATION[:REF] for the built-in transports and for others
// whose location is a path ("mytransport:/srv/x"). Unlike ref.Parse, a
// docker name without tag names the repository (Ref ""), not :latest. A
// docker image whose name is a built-in transport's needs docker://.
func ParseEndpoint(s string) (Endpoint, error) {
	name, isDocker := strings.CutPrefix(s, "docker://")
	if !isDocker {
		if t, rest, ok := strings.Cut(s, ":"); ok && isTransport(t, rest) {
			ep, err := ref.Parse(s)
			if errors.Is(err, ref.ErrUnknownTransport) {
				ep, err = ref.ParseGeneric(s)
			}
			if err != nil {
				return Endpoint{}, err
			}
			if (ep.Transport == ref.Static || ep.Transport == ref.DockerArchive) && !namesTag(rest) {
				// static:PATH:NAME and docker-archive:FILE:NAME name a
				// repository here, not NAME:latest.
				if ep.Transport == ref.Static {
					ep.Ref = ""
				} else {
					ep.Ref = strings.TrimSuffix(ep.Ref, ":latest")
				}
				return Endpoint{Endpoint: ep}, nil
			}
			return Endpoint{Endpoint: ep, Image: ep.Ref != ""}, nil
		}
		name = s
	}
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return Endpoint{}, fmt.Errorf("invalid image name %q: %v: %w", s, err, core.ErrInvalid)
	}
	ep := Endpoint{Endpoint: ref.Endpoint{Transport: ref.Docker, Location: named.Name()}}
	switch r := named.(type) {
	case reference.Digested:
		ep.Ref, ep.Image = r.Digest().String(), true
		if t, ok := named.(reference.Tagged); ok {
			ep.TagWithDigest = t.Tag()
		}
	case reference.Tagged:
		ep.Ref, ep.Image = r.Tag(), true
	}
	return ep, nil
}

// namesTag reports whether the PATH:NAME[:TAG|@REF] of a static: or
// docker-archive: endpoint has the tag, digest or archive index after its
// name.
func namesTag(rest string) bool {
	_, nameRef, _ := strings.Cut(rest, ":")
	if strings.Contains(nameRef, "@") {
		return true
	}
	return strings.Contains(nameRef[strings.LastIndex(nameRef, "/")+1:], ":")
}

// parsePrefix parses a registry-prefix source or target: a registry alone
// ("127.0.0.1:5000", "ghcr.io"), a registry and path ("quay.io/acme"), either
// after docker://, or TRANSPORT:LOCATION ("oci:/srv/mirror").
func parsePrefix(s string) (ref.Endpoint, error) {
	name, isDocker := strings.CutPrefix(s, "docker://")
	if !isDocker {
		if t, rest, ok := strings.Cut(s, ":"); ok && isTransport(t, rest) {
			ep, err := ParseEndpoint(s)
			if err != nil {
				return ref.Endpoint{}, err
			}
			if ep.Image {
				return ref.Endpoint{}, fmt.Errorf("%q names an image, not a prefix: %w", s, core.ErrInvalid)
			}
			return ep.Endpoint, nil
		}
		name = s
	}
	loc, err := ref.DockerPrefix(strings.TrimRight(name, "/"))
	if err != nil {
		return ref.Endpoint{}, err
	}
	return ref.Endpoint{Transport: ref.Docker, Location: loc}, nil
}

// isTransport tells "oci:/dir" and "mytransport:/x" (transports) from
// "alpine:3.20" and "localhost:5000/app" (docker names).
func isTransport(t, rest string) bool {
	if t == ref.Docker || !ref.ValidTransportName(t) {
		return false
	}
	for _, b := range ref.Builtin {
		if t == b {
			return true
		}
	}
	return strings.HasPrefix(rest, "/") || strings.HasPrefix(rest, ".")
}
