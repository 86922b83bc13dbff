package host

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/host/prestart"
)

// PinFileName is the pin file's name under $XDG_CONFIG_HOME/stevedore.
const PinFileName = prestart.PinFileName

// Pins are the sha256 sums plugin binaries must have, read from a pin file.
// Each line of the file is
//
//	SHA256  NAME-OR-PATH
//
// as `sha256sum` and `stevedore plugins --checksums` print it: 64 hex digits
// (an optional "sha256:" prefix is accepted), white space, then either a
// plugin name ("oci", or the file name "stevedore-transport-oci") or a path
// to a binary (anything containing a slash; relative paths are taken from
// the pin file's directory). Blank lines and lines starting with # are
// ignored. Several lines for one key allow any of their sums (handy while
// upgrading).
//
// A binary whose path is pinned must match one of the path's sums; otherwise
// a binary whose name is pinned must match one of the name's sums, wherever
// it was found on the search path (so a shadowing binary cannot slip in
// under a pinned name). Binaries pinned neither way run unchecked.
type Pins struct {
	// File is where the pins were read from, for messages.
	File   string
	byName map[string][]string
	byPath map[string][]string
}

// DefaultPinFile is $XDG_CONFIG_HOME/stevedore/plugins.lock (default
// ~/.config/stevedore/plugins.lock), or "" when neither is known.
func DefaultPinFile() string { return prestart.DefaultPinFile() }

// LoadPins reads the pin file at path. An empty path means DefaultPinFile,
// which may be missing: then LoadPins returns nil pins and no error. A path
// given explicitly must exist.
func LoadPins(path string) (*Pins, error) {
	explicit := path != ""
	if !explicit {
		path = DefaultPinFile()
		if path == "" {
			return nil, nil
		}
	}
	f, err := os.Open(path)
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("plugin pin file: %w", err)
	}
	defer f.Close()
	return ParsePins(f, path)
}

// ParsePins reads pins in the pin-file format from r; file names the source
// in messages and anchors relative paths.
func ParsePins(r io.Reader, file string) (*Pins, error) {
	p := &Pins{File: file, byName: map[string][]string{}, byPath: map[string][]string{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var sum, key string
		i := strings.IndexAny(line, " \t")
		ok := i > 0
		if ok {
			sum, key = line[:i], line[i+1:]
		}
		// sha256sum marks binary mode with a '*' before the file name.
		key = strings.TrimPrefix(strings.TrimSpace(key), "*")
		sum = strings.ToLower(strings.TrimPrefix(sum, "sha256:"))
		if !ok || key == "" || !isSHA256Hex(sum) {
			return nil, fmt.Errorf("plugin pin file %s line %d: want \"SHA256  NAME-OR-PATH\", got %q: %w", file, n, line, core.ErrInvalid)
		}
		if strings.Contains(key, "/") {
			if !filepath.IsAbs(key) {
				key = filepath.Join(filepath.Dir(file), key)
			}
			key = realPath(key)
			p.byPath[key] = appendNew(p.byPath[key], sum)
		} else {
			key = strings.TrimPrefix(key, BinaryPrefix)
			p.byName[key] = appendNew(p.byName[key], sum)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("plugin pin file %s: %w", file, err)
	}
	return p, nil
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Len is the number of pinned names and paths.
func (p *Pins) Len() int {
	if p == nil {
		return 0
	}
	return len(p.byName) + len(p.byPath)
}

// For returns the sums allowed for b and whether b is pinned at all.
func (p *Pins) For(b PluginBinary) ([]string, bool) {
	if p == nil {
		return nil, false
	}
	if sums, ok := p.byPath[realPath(b.Path)]; ok {
		return sums, true
	}
	sums, ok := p.byName[b.Name]
	return sums, ok
}

// ChecksumError reports a plugin binary whose sha256 is not the pinned one.
// It wraps core.ErrDenied; the host returns it inside a *PluginError, which
// names the binary.
type ChecksumError struct {
	// Expected are the pinned sums, Actual the binary's (hex).
	Expected []string
	Actual   string
	// PinFile is where the pins came from.
	PinFile string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("sha256 %s does not match the pinned %s in %s; refusing to run it (if this binary is trusted, update the pin: stevedore plugins --checksums)",
		e.Actual, strings.Join(e.Expected, " or "), e.PinFile)
}

func (e *ChecksumError) Unwrap() error { return core.ErrDenied }

// check hashes b and compares it with its pins. It returns the matching sum
// (raw bytes, for go-plugin's SecureConfig, which hashes the file again just
// before starting it) or nil when b is not pinned.
func (p *Pins) check(b PluginBinary) ([]byte, error) {
	sums, pinned := p.For(b)
	if !pinned {
		return nil, nil
	}
	actual, err := FileSHA256(b.Path)
	if err != nil {
		return nil, &PluginError{Plugin: b.Name, Path: b.Path, Err: fmt.Errorf("checksum: %w", err)}
	}
	if !slices.Contains(sums, actual) {
		return nil, &PluginError{Plugin: b.Name, Path: b.Path, Err: &ChecksumError{Expected: sums, Actual: actual, PinFile: p.File}}
	}
	raw, _ := hex.DecodeString(actual)
	return raw, nil
}

// FileSHA256 returns the hex sha256 of the file at path.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// realPath is path with symbolic links resolved (cleaned only when it
// cannot be): a pin by path holds whichever way the binary is reached.
func realPath(path string) string {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	return filepath.Clean(path)
}
