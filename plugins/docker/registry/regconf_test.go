package registry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
)

func writeFile(t *testing.T, path, s string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRegistriesConfMatch(t *testing.T) {
	path := writeFile(t, filepath.Join(t.TempDir(), "registries.conf"), `
unqualified-search-registries = ["docker.io"]
[aliases]
"alpine" = "docker.io/library/alpine"

[[registry]]
prefix = "example.com/foo"
location = "internal.example.net/bar"
[[registry.mirror]]
location = "mirror-0.local/mirror-for-foo"
[[registry.mirror]]
location = "mirror-1.local/mirrors/foo"
insecure = true
pull-from-mirror = "digest-only"

[[registry]]
location = "registry.com"
blocked = true

[[registry]]
prefix = "*.corp.example"
insecure = true
[[registry.mirror]]
location = "corp-mirror.local/cache"

[[registry]]
prefix = "docker.io/library"
location = "hub-cache.local:5000/library"
mirror-by-digest-only = true
[[registry.mirror]]
location = "hub-mirror.local/library"
`)
	conf, err := loadRegistriesConf(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		location, prefix, rewritten string
	}{
		{"example.com/foo/image", "example.com/foo", "internal.example.net/bar/image"},
		{"example.com/foo", "example.com/foo", "internal.example.net/bar"},
		{"example.com/foobar/image", "", "example.com/foobar/image"}, // not under the prefix
		{"registry.com/x/y", "registry.com", "registry.com/x/y"},
		{"a.b.corp.example:5000/app", "*.corp.example", "a.b.corp.example:5000/app"},
		{"corp.example/app", "", "corp.example/app"}, // the wildcard wants a subdomain
		{"docker.io/library/alpine", "docker.io/library", "hub-cache.local:5000/library/alpine"},
		{"docker.io/alpine/git", "", "docker.io/alpine/git"},
	} {
		e, ok := conf.match(c.location)
		if (c.prefix != "") != ok || e.Prefix != c.prefix {
			t.Errorf("%s: matched %q (%v), want %q", c.location, e.Prefix, ok, c.prefix)
			continue
		}
		if got := e.rewrite(e.Location, c.location); got != c.rewritten {
			t.Errorf("%s: rewritten to %s, want %s", c.location, got, c.rewritten)
		}
	}
	e, _ := conf.match("example.com/foo/image")
	if len(e.Mirrors) != 2 || e.rewrite(e.Mirrors[1].Location, "example.com/foo/image") != "mirror-1.local/mirrors/foo/image" {
		t.Fatalf("mirrors %+v", e.Mirrors)
	}
	if tag, dig := e.mirrorUse(e.Mirrors[0]); !tag || !dig {
		t.Errorf("mirror 0 serves tags %v digests %v, want both", tag, dig)
	}
	if tag, dig := e.mirrorUse(e.Mirrors[1]); tag || !dig {
		t.Errorf("digest-only mirror serves tags %v digests %v", tag, dig)
	}
	corp, _ := conf.match("a.b.corp.example:5000/team/app")
	if got := corp.rewrite(corp.Mirrors[0].Location, "a.b.corp.example:5000/team/app"); got != "corp-mirror.local/cache/team/app" {
		t.Errorf("wildcard mirror: %s, want the matched host replaced", got)
	}
	hub, _ := conf.match("docker.io/library/alpine")
	if tag, dig := hub.mirrorUse(hub.Mirrors[0]); tag || !dig {
		t.Errorf("mirror-by-digest-only: tags %v digests %v", tag, dig)
	}
	if b, _ := conf.match("registry.com/x"); !b.Blocked || b.file != path {
		t.Errorf("registry.com: %+v", b)
	}
}

// The default files: the user's registries.conf (when it exists) in place
// of the system's, then drop-ins by name, the system's directory first; a
// later table for a prefix replaces an earlier one; version 1 lists count.
func TestRegistriesConfDefaultFiles(t *testing.T) {
	sys, home := t.TempDir(), t.TempDir()
	old := systemContainersDir
	systemContainersDir = sys
	t.Cleanup(func() { systemContainersDir = old })
	t.Setenv("HOME", home)
	t.Setenv(EnvRegistriesConf, "")

	writeFile(t, filepath.Join(sys, "registries.conf"), `
[[registry]]
location = "system-only.example"
insecure = true
`)
	writeFile(t, filepath.Join(sys, "registries.conf.d/10-a.conf"), `
[[registry]]
prefix = "a.example"
location = "first.example"
`)
	writeFile(t, filepath.Join(home, ".config/containers/registries.conf.d/20-b.conf"), `
[[registry]]
prefix = "a.example"
location = "second.example"
[[registry]]
prefix = "a.example"
location = "ignored.example" # the first table of a prefix in a file counts
[registries.insecure]
registries = ["v1-insecure.example", "v1-both.example/"]
[registries.block]
registries = ["v1-blocked.example", "v1-both.example"]
`)
	conf, err := loadRegistriesConf("")
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := conf.match("system-only.example/x"); !ok || !e.Insecure {
		t.Errorf("system file not read: %+v", e)
	}
	if e, _ := conf.match("a.example/x"); e.Location != "second.example" {
		t.Errorf("a.example goes to %q, want the later drop-in's second.example", e.Location)
	}
	if e, _ := conf.match("v1-insecure.example/x"); !e.Insecure {
		t.Error("version 1 insecure list ignored")
	}
	if e, _ := conf.match("v1-blocked.example/x"); !e.Blocked {
		t.Error("version 1 block list ignored")
	}
	if e, _ := conf.match("v1-both.example/x"); !e.Blocked || !e.Insecure {
		t.Errorf("a registry in both version 1 lists: %+v", e)
	}

	// $CONTAINERS_REGISTRIES_CONF replaces the main file; the drop-ins
	// still apply, as for skopeo.
	t.Setenv(EnvRegistriesConf, writeFile(t, filepath.Join(t.TempDir(), "env.conf"), "[[registry]]\nlocation = \"env.example\"\nblocked = true\n"))
	if conf, err = loadRegistriesConf(""); err != nil {
		t.Fatal(err)
	}
	if _, ok := conf.match("system-only.example/x"); ok {
		t.Error("the system file was read beside $CONTAINERS_REGISTRIES_CONF's")
	}
	if e, _ := conf.match("env.example/x"); !e.Blocked {
		t.Error("$CONTAINERS_REGISTRIES_CONF not read")
	}
	if e, _ := conf.match("a.example/x"); e.Location != "second.example" {
		t.Errorf("drop-ins not read with $CONTAINERS_REGISTRIES_CONF: %+v", e)
	}
	// A drop-in may name a location the main file sets otherwise (only one
	// file's own tables must agree, as for containers/image).
	t.Setenv(EnvRegistriesConf, writeFile(t, filepath.Join(t.TempDir(), "env2.conf"), "[[registry]]\nlocation = \"second.example\"\ninsecure = true\n"))
	if _, err = loadRegistriesConf(""); err != nil {
		t.Errorf("a main file and a drop-in setting one location differently: %v", err)
	}
	t.Setenv(EnvRegistriesConf, "")

	// The user's own registries.conf replaces the system's, and only the
	// user's drop-ins go with it.
	writeFile(t, filepath.Join(home, ".config/containers/registries.conf"), "")
	conf, err = loadRegistriesConf("")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := conf.match("system-only.example/x"); ok {
		t.Error("the system file was read beside the user's")
	}
	if e, _ := conf.match("a.example/x"); e.Location != "second.example" {
		t.Errorf("a.example with the user's file: %+v", e)
	}
	os.Remove(filepath.Join(home, ".config/containers/registries.conf.d/20-b.conf"))
	if conf, err = loadRegistriesConf(""); err != nil {
		t.Fatal(err)
	}
	if _, ok := conf.match("a.example/x"); ok {
		t.Error("the system's drop-ins were read beside the user's registries.conf")
	}
	// No file at all is no configuration.
	systemContainersDir = t.TempDir()
	t.Setenv("HOME", t.TempDir())
	if conf, err = loadRegistriesConf(""); err != nil || len(conf.entries) != 0 {
		t.Fatalf("no files: %v, %d entries", err, len(conf.entries))
	}
}

func TestRegistriesConfErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, body, want string }{
		{"syntax", "[[registry]\nlocation = 1", "registries.conf " + filepath.Join(dir, "syntax")},
		{"pull", "[[registry]]\nlocation = \"r.example\"\n[[registry.mirror]]\nlocation = \"m.example\"\npull-from-mirror = \"sometimes\"", `pull-from-mirror "sometimes"`},
		{"both", "[[registry]]\nlocation = \"r.example\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"m.example\"\npull-from-mirror = \"tag-only\"", "cannot be set with mirror-by-digest-only"},
		{"wild", "[[registry]]\nprefix = \"*.example.com/foo\"", "*.DOMAIN alone"},
		{"empty", "[[registry]]\ninsecure = true", "neither prefix nor location"},
		{"nolocation", "[[registry]]\nprefix = \"r.example/team\"", "location is unset"},
		{"scheme", "[[registry]]\nlocation = \"https://r.example\"", "no URL scheme"},
		{"regpull", "[[registry]]\nlocation = \"r.example\"\npull-from-mirror = \"all\"", "belongs to a [[registry.mirror]]"},
	} {
		_, err := loadRegistriesConf(writeFile(t, filepath.Join(dir, c.name), c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line with %q", c.name, err, c.want)
			continue
		}
		mustIs(t, err, core.ErrInvalid)
	}
	// One registry under two prefixes, insecure in one table only.
	conflict := writeFile(t, filepath.Join(dir, "conflict"), "[[registry]]\nprefix = \"a.example/x\"\nlocation = \"r.example/x\"\ninsecure = true\n[[registry]]\nprefix = \"a.example/y\"\nlocation = \"r.example/x\"\n")
	if _, err := loadRegistriesConf(conflict); err == nil || !strings.Contains(err.Error(), "r.example/x is set up twice") {
		t.Errorf("conflicting tables: %v", err)
	}
	// A file named (option or environment) is decoded even when it holds
	// no table read here: a file that is not TOML was taken silently.
	notTOML := writeFile(t, filepath.Join(dir, "nottoml"), "hi\n")
	if _, err := loadRegistriesConf(notTOML); err == nil || !strings.Contains(err.Error(), "registries.conf "+notTOML) {
		t.Errorf("a named file that is not TOML: %v", err)
	}
	// A file named (option or environment) must exist.
	if _, err := loadRegistriesConf(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing named file was accepted")
	}
}

func TestMayConfigure(t *testing.T) {
	for body, want := range map[string]bool{
		"# [[registry]]\n# location = \"x\"\n":                              false,
		"[aliases]\n  \"fedora\" = \"registry.fedoraproject.org/fedora\"\n": false,
		"unqualified-search-registries = [\"docker.io\"]\n":                 false,
		"credential-helpers = [\"ecr-login\"]\n":                            true,
		"[[registry]]\nlocation = \"x\"\n":                                  true,
		"  [[ registry ]]\n":                                                true, // TOML allows spaces inside the brackets
		"registry = [{location = \"x\", insecure = true}]\n":                true,
		"[registries.insecure]\nregistries = [\"x\"]\n":                     true,
		"registries.block.registries = [\"x\"]\n":                           true,
		"\"registry\" = [{location = \"x\"}]\n":                             true,
		"[aliases]\n\"registry\" = \"docker.io/library/registry\"\n":        false, // Debian's shortnames.conf
	} {
		if got := mayConfigure([]byte(body)); got != want {
			t.Errorf("mayConfigure(%q) = %v, want %v", body, got, want)
		}
	}
}
