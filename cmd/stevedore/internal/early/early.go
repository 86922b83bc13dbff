// Package early starts the transport plugins a stevedore command line
// names while the CLI's other packages are still initialising (package
// prestart), so that a plugin's start-up overlaps the host's.
//
// Its init function does the work. It must run before the heavy package
// initialisers (protobuf descriptors, reference and semver grammars,
// go-plugin's net/rpc): Go initialises packages in the order of their import
// paths among those whose imports are done, and this package and prestart
// import almost nothing, so they run right after the standard library's
// first packages. Keep it that way: TestInitOrder in cmd/stevedore checks.
package early

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/stevedore-oci/stevedore/host/prestart"
)

// EnvSwitch set to "off" (or 0, false, no) starts nothing ahead.
const EnvSwitch = "STEVEDORE_PRESTART"

func init() {
	if off(os.Getenv(EnvSwitch)) || os.Getenv("STEVEDORE_PLUGIN_REATTACH") != "" {
		return
	}
	dirs := prestart.SearchPath()
	paths := Guess(os.Args[1:], func(name string) string { return prestart.Find(dirs, name) }, pinned)
	if len(paths) > 0 {
		prestart.Start(paths)
	}
}

func off(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "off", "0", "false", "no":
		return true
	}
	return false
}

// pinned says whether a default pin file may be in effect: then the host
// hashes each binary before it runs it, and nothing may be started ahead.
func pinned() bool {
	f := prestart.DefaultPinFile()
	if f == "" {
		return false
	}
	_, err := os.Lstat(f)
	return !errors.Is(err, fs.ErrNotExist)
}

// commands are the verbs whose arguments name images by transport.
var commands = map[string]bool{
	"copy": true, "inspect": true, "list-tags": true, "delete": true,
	"sync": true, "list-repositories": true,
}

// Guess returns the plugin binaries (paths from find, given a binary's
// name) that the command line args will launch, as far as it can tell
// without the CLI's flag definitions: the owners of the transports its
// arguments name. It returns none for help, for a pin file (--plugin-lock,
// or pinned says the default one exists) and for --registries-conf (which
// changes the plugins' environment). A wrong guess costs a process started
// and killed; the host never uses one it would not have started itself.
func Guess(args []string, find func(name string) string, pinned func() bool) []string {
	i := 0
	for ; i < len(args) && strings.HasPrefix(args[i], "-"); i++ {
		if args[i] != "--debug" && args[i] != "--insecure-policy" {
			return nil // --plugin-lock, --registries-conf, --help, or unknown
		}
	}
	if i == len(args) || !commands[args[i]] {
		return nil
	}
	var names []string
	for _, a := range args[i+1:] {
		if a == "-h" || a == "--help" || strings.HasPrefix(a, "--plugin-lock") || strings.HasPrefix(a, "--registries-conf") {
			return nil
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		t, rest, ok := strings.Cut(a, ":")
		if !ok || !validTransport(t) {
			continue
		}
		name, builtin := prestart.Owners[t]
		if t == "docker" && !strings.HasPrefix(rest, "//") {
			continue
		}
		if !builtin {
			name = t // a third party's transport, served by the binary of its name
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 || pinned() {
		return nil
	}
	var paths []string
	for _, n := range names {
		if p := find(n); p != "" {
			paths = append(paths, p)
		}
	}
	return paths
}

// validTransport accepts transport names as references spell them:
// lower-case letters, digits and dashes, not starting with a dash.
func validTransport(s string) bool {
	if s == "" || s[0] == '-' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
