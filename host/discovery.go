package host

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/stevedore-oci/stevedore/host/prestart"
)

// BinaryPrefix starts the file name of every transport plugin binary.
const BinaryPrefix = prestart.BinaryPrefix

// PluginBinary is a plugin executable found on the search path.
type PluginBinary struct {
	// Name is the file name without BinaryPrefix ("oci", "archive").
	Name string
	// Path is the absolute path of the binary that wins.
	Path string
	// Shadowed lists binaries of the same name later on the search path,
	// which this one overrides.
	Shadowed []string
}

// DefaultSearchPath is where plugins are looked for, first match wins:
// $STEVEDORE_PLUGIN_PATH (colon-separated), the directory of the running
// executable, then $XDG_DATA_HOME/stevedore/plugins (default
// ~/.local/share/stevedore/plugins).
func DefaultSearchPath() []string { return prestart.SearchPath() }

// Discover lists the plugin binaries in dirs, first match of a name wins.
// Missing directories are skipped; files that are not executable are
// ignored.
func Discover(dirs []string) []PluginBinary {
	byName := map[string]*PluginBinary{}
	var order []string
	seen := map[string]bool{}
	for _, dir := range dirs {
		abs, err := filepath.Abs(dir)
		if err != nil || seen[abs] {
			continue
		}
		seen[abs] = true
		entries, err := os.ReadDir(abs)
		if err != nil {
			continue
		}
		for _, e := range entries {
			name, ok := strings.CutPrefix(e.Name(), BinaryPrefix)
			if !ok || name == "" || strings.ContainsAny(name, ". ") {
				continue
			}
			p := filepath.Join(abs, e.Name())
			if !prestart.Usable(p) {
				continue
			}
			if b, ok := byName[name]; ok {
				b.Shadowed = append(b.Shadowed, p)
				continue
			}
			byName[name] = &PluginBinary{Name: name, Path: p}
			order = append(order, name)
		}
	}
	sort.Strings(order)
	out := make([]PluginBinary, 0, len(order))
	for _, n := range order {
		out = append(out, *byName[n])
	}
	return out
}

// unusableBinaries describes the files in dirs named for plugin name that
// Discover skips (not executable, not a regular file), so that "no plugin
// serves" can say why the one the user put there was not used.
func unusableBinaries(dirs []string, name string) []string {
	var out []string
	for _, dir := range dirs {
		p := filepath.Join(dir, BinaryPrefix+name)
		fi, err := os.Stat(p)
		switch {
		case err != nil:
		case !fi.Mode().IsRegular():
			out = append(out, p+" is not a regular file")
		case fi.Mode().Perm()&0o111 == 0:
			out = append(out, p+" is not executable (chmod +x)")
		}
	}
	return out
}

// candidates orders binaries by how likely they serve transport: an exact
// name first, then names contained in the transport (archive for
// docker-archive), then the rest, so that usually one launch suffices.
func candidates(bins []PluginBinary, transport string) []PluginBinary {
	var exact, partial, rest []PluginBinary
	for _, b := range bins {
		switch {
		case b.Name == transport:
			exact = append(exact, b)
		case strings.Contains(transport, b.Name) || strings.Contains(b.Name, transport):
			partial = append(partial, b)
		default:
			rest = append(rest, b)
		}
	}
	return append(append(exact, partial...), rest...)
}

// builtinOwner names the binary (stevedore-transport-NAME) that serves each
// of the project's own transports: no other plugin may take one over (it
// would be handed the credentials and content meant for that transport).
var builtinOwner = prestart.Owners

// mayServe reports whether binary b may serve transport t: a built-in
// transport only from its own binary; another from the binary named after
// it when there is one (bins), else from any binary claiming it.
func mayServe(bins []PluginBinary, b PluginBinary, t string) bool {
	if owner, ok := builtinOwner[t]; ok {
		return b.Name == owner
	}
	if b.Name == t {
		return true
	}
	for _, o := range bins {
		if o.Name == t {
			return false
		}
	}
	return true
}
