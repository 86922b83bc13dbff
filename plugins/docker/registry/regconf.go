package registry

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/stevedore-oci/stevedore/core"
)

// The containers-registries.conf(5) settings skopeo and podman read, which
// a platform team uses to point a whole fleet at internal mirrors: per
// [[registry]] prefix, a location the name is rewritten to, insecure
// (plain HTTP or unverified TLS allowed), blocked (no pulls), and
// [[registry.mirror]] tables tried in order before the location when
// pulling. As in containers/image, rewriting and mirrors apply to reads
// only; insecure to both. Short-name settings (unqualified-search
// registries, aliases) do not apply: names are always normalised as docker
// does.

// systemContainersDir holds the system's registries.conf (a variable for
// tests).
var systemContainersDir = "/etc/containers"

// EnvRegistriesConf names a registries.conf to read instead of the default
// ones (and their drop-in directories), as for skopeo.
const EnvRegistriesConf = "CONTAINERS_REGISTRIES_CONF"

// registriesConf is what the files say.
type registriesConf struct {
	entries []regEntry
	// credHelpers is the credential-helpers list: docker-credential-NAME
	// helpers, and "containers-auth.json" for the auth files, consulted in
	// order; nil means the auth files alone.
	credHelpers []string
}

// regEntry is one [[registry]] table (or a version 1 list item).
type regEntry struct {
	Prefix             string      `toml:"prefix"`
	Location           string      `toml:"location"`
	Insecure           bool        `toml:"insecure"`
	Blocked            bool        `toml:"blocked"`
	MirrorByDigestOnly bool        `toml:"mirror-by-digest-only"`
	Mirrors            []regMirror `toml:"mirror"`
	PullFromMirror     string      `toml:"pull-from-mirror"` // refused here: a mirror's setting

	file string // where it was read
}

type regMirror struct {
	Location       string `toml:"location"`
	Insecure       bool   `toml:"insecure"`
	PullFromMirror string `toml:"pull-from-mirror"`
}

// regFile is the TOML of one file: version 2 tables, or the version 1
// lists (insecure and blocked registries; search lists do not apply).
type regFile struct {
	Registry          []regEntry `toml:"registry"`
	CredentialHelpers []string   `toml:"credential-helpers"`
	Registries        struct {
		Insecure struct {
			Registries []string `toml:"registries"`
		} `toml:"insecure"`
		Block struct {
			Registries []string `toml:"registries"`
		} `toml:"block"`
	} `toml:"registries"`
}

// regConfFiles names the files to read as containers/image picks them: the
// main file is path (Plugin.RegistriesConf, read alone), else
// $CONTAINERS_REGISTRIES_CONF, else ~/.config/containers/registries.conf
// if it exists, else /etc/containers/registries.conf. Drop-ins (*.conf, in
// name order) come from ~/.config/containers/registries.conf.d alone when
// the user's own file is the main one, else from the system's directory
// then the user's. named says the main file must exist.
func regConfFiles(path string) (main string, named bool, dropins []string) {
	if path != "" {
		return path, true, nil
	}
	home, _ := os.UserHomeDir()
	userFile, userDir := "", ""
	if home != "" {
		userFile = filepath.Join(home, ".config/containers/registries.conf")
		userDir = filepath.Join(home, ".config/containers/registries.conf.d")
	}
	dirs := []string{filepath.Join(systemContainersDir, "registries.conf.d"), userDir}
	switch env := os.Getenv(EnvRegistriesConf); {
	case env != "":
		main, named = env, true
	case userFile != "" && fileExists(userFile):
		main, dirs = userFile, []string{userDir}
	default:
		main = filepath.Join(systemContainersDir, "registries.conf")
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		names, _ := filepath.Glob(filepath.Join(d, "*.conf"))
		sort.Strings(names)
		dropins = append(dropins, names...)
	}
	return main, named, dropins
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// loadRegistriesConf reads the files; a missing default file is no
// configuration, a named one that is missing is an error. Within a file
// the first table for a prefix counts; a later file's table replaces an
// earlier file's (containers-registries.conf.d(5)).
func loadRegistriesConf(path string) (*registriesConf, error) {
	main, named, dropins := regConfFiles(path)
	conf := &registriesConf{}
	for i, f := range append([]string{main}, dropins...) {
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) && (i > 0 || !named) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("registries.conf: %w", err)
		}
		if !mayConfigure(b) && (i > 0 || !named) {
			// A file named by option or environment is decoded whatever
			// it holds: one that is not TOML at all was taken silently.
			continue
		}
		entries, helpers, err := parseRegistriesConf(f, b)
		if err != nil {
			return nil, err
		}
		if err := checkLocations(entries); err != nil {
			return nil, err
		}
		if helpers != nil {
			conf.credHelpers = helpers // a later file's list replaces an earlier one's
		}
		for _, e := range entries {
			conf.entries = slices.DeleteFunc(conf.entries, func(o regEntry) bool { return o.Prefix == e.Prefix })
			conf.entries = append(conf.entries, e)
		}
	}
	return conf, nil
}

// checkLocations refuses one file naming a registry in several tables with
// different insecure or blocked settings, as containers/image does (it
// checks each file alone: a drop-in may set a location its main file set
// otherwise).
func checkLocations(entries []regEntry) error {
	byLocation := map[string]regEntry{}
	for _, e := range entries {
		loc := cmp.Or(e.Location, e.Prefix)
		if o, ok := byLocation[loc]; ok && (o.Insecure != e.Insecure || o.Blocked != e.Blocked) {
			return fmt.Errorf("registries.conf: %s is set up twice with different insecure or blocked settings (prefix %q in %s, prefix %q in %s): %w", loc, o.Prefix, o.file, e.Prefix, e.file, core.ErrInvalid)
		}
		byLocation[loc] = e
	}
	return nil
}

// parseRegistriesConf decodes and checks one file's tables, a version 1
// registry in both lists being one entry.
func parseRegistriesConf(f string, b []byte) ([]regEntry, []string, error) {
	var rf regFile
	if _, err := toml.Decode(string(b), &rf); err != nil {
		return nil, nil, fmt.Errorf("registries.conf %s: %s: %w", f, oneLine(err.Error()), core.ErrInvalid)
	}
	for _, h := range rf.CredentialHelpers {
		if h == "" || strings.ContainsAny(h, "/ \t") {
			return nil, nil, fmt.Errorf("registries.conf %s: credential-helpers: %q is not a helper name: %w", f, h, core.ErrInvalid)
		}
	}
	var out []regEntry
	seen := map[string]int{}
	add := func(e regEntry) {
		e.file = f
		if _, dup := seen[e.Prefix]; !dup {
			seen[e.Prefix] = len(out)
			out = append(out, e)
		}
	}
	for _, e := range rf.Registry {
		if err := e.normalise(); err != nil {
			return nil, nil, fmt.Errorf("registries.conf %s: [[registry]] %q: %w", f, cmp.Or(e.Prefix, e.Location), err)
		}
		add(e)
	}
	v1 := func(hosts []string, set func(*regEntry)) error {
		for _, h := range hosts {
			e := regEntry{Location: h}
			if err := e.normalise(); err != nil {
				return fmt.Errorf("registries.conf %s: registry %q: %w", f, h, err)
			}
			if i, ok := seen[e.Prefix]; ok {
				set(&out[i])
				continue
			}
			set(&e)
			add(e)
		}
		return nil
	}
	if err := v1(rf.Registries.Insecure.Registries, func(e *regEntry) { e.Insecure = true }); err != nil {
		return nil, nil, err
	}
	if err := v1(rf.Registries.Block.Registries, func(e *regEntry) { e.Blocked = true }); err != nil {
		return nil, nil, err
	}
	return out, rf.CredentialHelpers, nil
}

// normalise trims trailing slashes, defaults the prefix to the location and
// refuses what containers/image refuses.
func (e *regEntry) normalise() error {
	var err error
	if e.Location, err = cleanLocation(e.Location); err != nil {
		return err
	}
	if e.Prefix, err = cleanLocation(e.Prefix); err != nil {
		return err
	}
	for i := range e.Mirrors {
		if e.Mirrors[i].Location, err = cleanLocation(e.Mirrors[i].Location); err != nil {
			return err
		}
	}
	switch {
	case e.Prefix == "" && e.Location == "":
		return fmt.Errorf("neither prefix nor location is set: %w", core.ErrInvalid)
	case e.Prefix == "":
		e.Prefix = e.Location
	case e.Location == "" && !strings.HasPrefix(e.Prefix, "*."):
		return fmt.Errorf("location is unset and the prefix is not *.DOMAIN: %w", core.ErrInvalid)
	}
	if e.PullFromMirror != "" {
		return fmt.Errorf("pull-from-mirror belongs to a [[registry.mirror]], not the registry: %w", core.ErrInvalid)
	}
	return e.check()
}

// cleanLocation trims trailing slashes and refuses a URL scheme.
func cleanLocation(s string) (string, error) {
	s = strings.TrimRight(s, "/")
	if strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		return "", fmt.Errorf("location %q: a registry location has no URL scheme: %w", s, core.ErrInvalid)
	}
	return s, nil
}

// mayConfigure reports whether a file may hold a setting read here: a
// registry or registries table, or such a key outside any table. Files with
// none (Debian ships one of short-name aliases and one of comments, read on
// every command) are not decoded, which saves most of a millisecond per
// command; their syntax is theirs to check.
func mayConfigure(b []byte) bool {
	root := true // no table header seen yet
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		header := strings.HasPrefix(line, "[")
		name := strings.TrimLeft(line, "[\"' \t")
		ours := strings.HasPrefix(name, "registry") || strings.HasPrefix(name, "registries") ||
			(!header && strings.HasPrefix(name, "credential-helpers"))
		switch {
		case header && ours, !header && root && ours:
			return true
		case header:
			root = false
		}
	}
	return false
}

func (e regEntry) check() error {
	if strings.HasPrefix(e.Prefix, "*.") {
		if strings.ContainsAny(e.Prefix, "/:@") {
			return fmt.Errorf("a wildcard prefix is *.DOMAIN alone: %w", core.ErrInvalid)
		}
	} else if strings.Contains(e.Prefix, "*") {
		return fmt.Errorf("a wildcard is allowed only as a leading *. of the prefix: %w", core.ErrInvalid)
	}
	for _, m := range e.Mirrors {
		if m.Location == "" {
			return fmt.Errorf("a mirror without a location: %w", core.ErrInvalid)
		}
		switch m.PullFromMirror {
		case "", "all", "digest-only", "tag-only":
		default:
			return fmt.Errorf("mirror %s: pull-from-mirror %q is not all, digest-only or tag-only: %w", m.Location, m.PullFromMirror, core.ErrInvalid)
		}
		if m.PullFromMirror != "" && m.PullFromMirror != "all" && e.MirrorByDigestOnly {
			return fmt.Errorf("mirror %s: pull-from-mirror cannot be set with mirror-by-digest-only: %w", m.Location, core.ErrInvalid)
		}
	}
	return nil
}

// match returns the entry whose prefix is the longest match of location
// ("host/repository"), and whether there is one (else the zero entry:
// nothing rewritten, mirrored, insecure or blocked).
func (c *registriesConf) match(location string) (regEntry, bool) {
	var best regEntry
	bestLen := -1
	host, _, _ := strings.Cut(location, "/")
	for _, e := range c.entries {
		n := -1
		if suffix, ok := strings.CutPrefix(e.Prefix, "*"); ok {
			// *.example.com: any host under example.com, port or not.
			h, _, _ := strings.Cut(host, ":")
			if strings.HasSuffix(h, suffix) {
				n = len(e.Prefix)
			}
		} else if location == e.Prefix || strings.HasPrefix(location, e.Prefix+"/") {
			n = len(e.Prefix)
		}
		if n > bestLen {
			best, bestLen = e, n
		}
	}
	return best, bestLen >= 0
}

// rewrite returns location with the entry's prefix replaced by location
// (or by a mirror's location).
func (e regEntry) rewrite(to, location string) string {
	switch {
	case to == "":
		return location
	case strings.HasPrefix(e.Prefix, "*."):
		// The host the wildcard matched is what is replaced.
		host, _, _ := strings.Cut(location, "/")
		return to + strings.TrimPrefix(location, host)
	}
	return to + strings.TrimPrefix(location, e.Prefix)
}

// mirrorUse says for which references a mirror is tried.
func (e regEntry) mirrorUse(m regMirror) (byTag, byDigest bool) {
	if e.MirrorByDigestOnly {
		return false, true
	}
	switch m.PullFromMirror {
	case "digest-only":
		return false, true
	case "tag-only":
		return true, false
	}
	return true, true
}

// registries loads the registries.conf files once per plugin process.
func (p *Plugin) registries() (*registriesConf, error) {
	p.regOnce.Do(func() { p.regConf, p.regErr = loadRegistriesConf(p.RegistriesConf) })
	return p.regConf, p.regErr
}

// withInsecure turns TLS verification off for an insecure registry or
// mirror, unless the options set it.
func withInsecure(opts options, insecure bool) options {
	if insecure && !opts.tlsVerifySet {
		opts.tlsVerify = false
	}
	return opts
}

// insecure applies the insecure setting of the entry matching a registry
// or prefix that is listed, not read (no match: the zero entry).
func (c *registriesConf) insecure(location string, opts options) options {
	e, _ := c.match(location)
	return withInsecure(opts, e.Insecure)
}

// credentialHelpers is registries.conf's credential-helpers list (nil when
// the files set none or could not be read: Open reports that).
func (p *Plugin) credentialHelpers() []string {
	if conf, err := p.registries(); err == nil {
		return conf.credHelpers
	}
	return nil
}
