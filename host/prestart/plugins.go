package prestart

import (
	"os"
	"path"
	"strings"
)

// What the host and this package share about finding and starting plugin
// binaries: one definition, so that a process started ahead is the one the
// host would start.
//
// File paths are handled with package path, not path/filepath: on the Unix
// systems Stevedore runs on they are the same, and path/filepath's
// initialisation comes late in the program's (see cmd/stevedore/internal/early).

// BinaryPrefix starts the file name of every transport plugin binary.
const BinaryPrefix = "stevedore-transport-"

// Owners names the binary (BinaryPrefix+NAME) that serves each of the
// project's own transports.
var Owners = map[string]string{
	"oci": "oci", "docker": "docker", "dir": "dir", "static": "static",
	"oci-archive": "archive", "docker-archive": "archive",
}

// SearchPath is where plugins are looked for, first match wins:
// $STEVEDORE_PLUGIN_PATH (colon-separated), the directory of the running
// executable, then $XDG_DATA_HOME/stevedore/plugins (default
// ~/.local/share/stevedore/plugins).
func SearchPath() []string {
	var dirs []string
	for _, d := range strings.Split(os.Getenv("STEVEDORE_PLUGIN_PATH"), ":") {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	if exe, err := executable(); err == nil {
		dirs = append(dirs, path.Dir(exe))
	}
	data := os.Getenv("XDG_DATA_HOME")
	if data == "" {
		if home, err := os.UserHomeDir(); err == nil {
			data = path.Join(home, ".local", "share")
		}
	}
	if data != "" {
		dirs = append(dirs, path.Join(data, "stevedore", "plugins"))
	}
	return dirs
}

// Usable says whether the file at p can be a plugin binary: a regular file
// someone may execute.
func Usable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Find returns the path of the binary named BinaryPrefix+name that wins on
// dirs (absolute, as the host's discovery makes it), or "".
func Find(dirs []string, name string) string {
	for _, dir := range dirs {
		abs, err := Abs(dir)
		if err != nil {
			continue
		}
		if p := path.Join(abs, BinaryPrefix+name); Usable(p) && listable(abs) {
			return p
		}
	}
	return ""
}

// listable says whether the directory can be read: the host's discovery
// lists each directory and skips one it cannot, even when a file in it
// could be run (a directory of mode 0711).
func listable(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// Abs is filepath.Abs on Unix: dir made absolute against the working
// directory, and cleaned.
func Abs(dir string) (string, error) {
	if path.IsAbs(dir) {
		return path.Clean(dir), nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return path.Join(wd, dir), nil
}

// PinFileName is the name of the plugin pin file in the configuration
// directory.
const PinFileName = "plugins.lock"

// DefaultPinFile is $XDG_CONFIG_HOME/stevedore/plugins.lock (default
// ~/.config/stevedore/plugins.lock), or "" when neither is known.
func DefaultPinFile() string {
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = path.Join(home, ".config")
	}
	return path.Join(dir, "stevedore", PinFileName)
}

// envAllow lists the host environment variables a plugin may see. go-plugin
// would otherwise append the whole host environment after ours (and the last
// duplicate wins), so the host passes SkipHostEnv and this explicit list.
var envAllow = []string{
	"HOME", "USER", "PATH", "TMPDIR", "LANG", "LC_ALL", "TZ",
	"XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME",
	"DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "CONTAINERS_REGISTRIES_CONF",
	"SSL_CERT_FILE", "SSL_CERT_DIR",
	// The Go runtime settings a user sets to bound the host bind its
	// plugins too.
	"GOGC", "GOMEMLIMIT", "GOMAXPROCS",
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
}

// Env builds a plugin's environment from the allow-list plus every
// STEVEDORE_* variable, its socket directory last (go-plugin adds its own
// variables after these).
func Env(socketDir string) []string {
	var env []string
	for _, k := range envAllow {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "STEVEDORE_") {
			env = append(env, kv)
		}
	}
	// A short directory keeps go-plugin's unix socket paths under the
	// ~104 byte limit.
	return append(env, "PLUGIN_UNIX_SOCKET_DIR="+socketDir)
}
