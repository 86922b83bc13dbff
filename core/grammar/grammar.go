// Package grammar checks the names of the distribution spec (tags,
// repositories) and of the image-layout spec (ref.name) by hand: the
// equivalent regular expressions cost ~130 KB and a few hundred
// microseconds to compile at every process start. It imports no reference
// parser, so that what only checks names (the oci: plugin's layout store)
// does not pay for one at start-up.
package grammar

import (
	"fmt"
	"strings"

	"github.com/stevedore-oci/stevedore/core"
)

// Tag reports whether s matches [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func Tag(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case IsLowerAlnum(c), c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// Repository reports whether s is a repository name: components of
// [a-z0-9]+ joined by '.', '_', '__' or runs of '-', separated by '/'.
func Repository(s string) bool {
	if s == "" {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '/' {
			if !validComponent(s[start:i]) {
				return false
			}
			start = i + 1
		}
	}
	return true
}

func validComponent(c string) bool {
	i := 0
	for {
		j := i
		for j < len(c) && IsLowerAlnum(c[j]) {
			j++
		}
		if j == i {
			return false // empty, or a separator not followed by [a-z0-9]
		}
		if j == len(c) {
			return true
		}
		switch c[j] {
		case '.':
			j++
		case '_':
			j++
			if j < len(c) && c[j] == '_' {
				j++
			}
		case '-':
			for j < len(c) && c[j] == '-' {
				j++
			}
		default:
			return false
		}
		i = j
	}
}

// IsLowerAlnum reports whether c is in [a-z0-9].
func IsLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// LayoutName checks an image name of an OCI layout's index.json
// (org.opencontainers.image.ref.name): letters, digits and -._:@+/, starting
// with a letter or digit, as the image-layout spec's grammar allows.
func LayoutName(name string) error {
	if name == "" {
		return fmt.Errorf("empty image name: %w", core.ErrInvalid)
	}
	for i, c := range name {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return fmt.Errorf("image name %q must start with a letter or digit: %w", name, core.ErrInvalid)
		}
		if !alnum && !strings.ContainsRune("-._:@+/", c) {
			return fmt.Errorf("image name %q: character %q not allowed: %w", name, c, core.ErrInvalid)
		}
	}
	return nil
}
