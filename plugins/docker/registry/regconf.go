package registry

import (
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
	files   []string // read, in order (for error messages)
}

// regEntry is one [[registry]] table (or a version 1 list item).
type regEntry struct {
	Prefix             string      `toml:"prefix"`
	Location           string      `toml:"location"`
	Insecure           bool        `toml:"insecure"`
	Blocked            bool        `toml:"blocked"`
	MirrorByDigestOnly bool        `toml:"mirror-by-digest-only"`
	Mirrors            []regMirror `toml:"mirror"`

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
	Registry   []regEntry `toml:"registry"`
	Registries struct {
		Insecure struct {
			Registries []string `toml:"registries"`
		} `toml:"insecure"`
		Block struct {
			Registries []string `toml:"registries"`
		} `toml:"block"`
	} `toml:"registries"`
}

// regConfFiles lists the files to read: path alone when given (the option,
// or $CONTAINERS_REGISTRIES_CONF), else ~/.config/containers/registries.conf
// if it exists or else /etc/containers/registries.conf, then the *.conf
// drop-ins of /etc/containers/registries.conf.d and
// ~/.config/containers/registries.conf.d in name order.
func regConfFiles(path string) []string {
	if path == "" {
		path = os.Getenv(EnvRegistriesConf)
	}
	if path != "" {
		return []string{path}
	}
	home, _ := os.UserHomeDir()
	main := filepath.Join(systemContainersDir, "registries.conf")
	if home != "" {
		if _, err := os.Stat(filepath.Join(home, ".config/containers/registries.conf")); err == nil {
			main = filepath.Join(home, ".config/containers/registries.conf")
		}
	}
	files := []string{main}
	dirs := []string{filepath.Join(systemContainersDir, "registries.conf.d")}
	if home != "" {
		dirs = append(dirs, filepath.Join(home, ".config/containers/registries.conf.d"))
	}
	for _, d := range dirs {
		names, _ := filepath.Glob(filepath.Join(d, "*.conf"))
		sort.Strings(names)
		files = append(files, names...)
	}
	return files
}

// loadRegistriesConf reads the files; a missing default file is no
// configuration, a named one that is missing is an error.
func loadRegistriesConf(path string) (*registriesConf, error) {
	named := path != "" || os.Getenv(EnvRegistriesConf) != ""
	conf := &registriesConf{}
	for _, f := range regConfFiles(path) {
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) && !named {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("registries.conf: %w", err)
		}
		if !mayConfigure(b) {
			continue
		}
		var rf regFile
		if _, err := toml.Decode(string(b), &rf); err != nil {
			return nil, fmt.Errorf("registries.conf %s: %s: %w", f, oneLine(err.Error()), core.ErrInvalid)
		}
		conf.files = append(conf.files, f)
		add := func(e regEntry) {
			e.file = f
			// A later file's table for the same prefix replaces the
			// earlier one (containers-registries.conf.d(5)).
			conf.entries = slices.DeleteFunc(conf.entries, func(o regEntry) bool { return o.Prefix == e.Prefix })
			conf.entries = append(conf.entries, e)
		}
		for _, e := range rf.Registry {
			if e.Prefix == "" {
				e.Prefix = e.Location
			}
			if err := e.check(); err != nil {
				return nil, fmt.Errorf("registries.conf %s: [[registry]] %q: %w", f, e.Prefix, err)
			}
			add(e)
		}
		for _, h := range rf.Registries.Insecure.Registries {
			add(regEntry{Prefix: h, Insecure: true})
		}
		for _, h := range rf.Registries.Block.Registries {
			add(regEntry{Prefix: h, Blocked: true})
		}
	}
	return conf, nil
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
		ours := strings.HasPrefix(name, "registry") || strings.HasPrefix(name, "registries")
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
	if e.Prefix == "" {
		return fmt.Errorf("neither prefix nor location is set: %w", core.ErrInvalid)
	}
	if strings.HasPrefix(e.Prefix, "*.") {
		if strings.ContainsAny(e.Prefix, "/:@") {
			return fmt.Errorf("a wildcard prefix is *.DOMAIN alone: %w", core.ErrInvalid)
		}
		if e.Location != "" && e.Location != e.Prefix {
			return fmt.Errorf("a wildcard prefix cannot be rewritten to a location: %w", core.ErrInvalid)
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
// ("host/repository"), and whether there is one.
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
	if to == "" || strings.HasPrefix(e.Prefix, "*.") {
		return location
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

// applyInsecure turns TLS verification off for an insecure registry or
// mirror, unless the options set it.
func (e regEntry) applyInsecure(insecure bool, opts options) options {
	if insecure && !opts.tlsVerifySet {
		opts.tlsVerify = false
	}
	return opts
}

// insecure applies the insecure setting of the entry matching a registry
// or prefix that is listed, not read.
func (c *registriesConf) insecure(location string, opts options) options {
	if e, ok := c.match(location); ok {
		return e.applyInsecure(e.Insecure, opts)
	}
	return opts
}
