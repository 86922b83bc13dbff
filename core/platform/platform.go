package platform

import (
	"fmt"
	"runtime"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
)

// Parse parses "os/arch[/variant]" and normalises it.
func Parse(s string) (ocispec.Platform, error) {
	parts := strings.Split(strings.TrimSpace(s), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" || (len(parts) == 3 && parts[2] == "") {
		return ocispec.Platform{}, fmt.Errorf("platform %q: want OS/ARCH[/VARIANT], e.g. linux/arm64: %w", s, core.ErrInvalid)
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return Normalize(p), nil
}

// Normalize lower-cases and maps architecture aliases to their OCI names:
// x86_64 -> amd64, aarch64 -> arm64 (variant v8 dropped: it is the only
// arm64 variant), armhf -> arm/v7, armel -> arm/v6, i386/i686 -> 386; a
// bare arm means arm/v7.
func Normalize(p ocispec.Platform) ocispec.Platform {
	p.OS = strings.ToLower(p.OS)
	if p.OS == "macos" {
		p.OS = "darwin"
	}
	arch, variant := strings.ToLower(p.Architecture), strings.ToLower(p.Variant)
	switch arch {
	case "x86_64", "x86-64", "amd64":
		arch = "amd64"
		if variant == "v1" {
			variant = ""
		}
	case "aarch64", "arm64":
		arch = "arm64"
		if variant == "v8" || variant == "8" {
			variant = ""
		}
	case "armhf":
		arch, variant = "arm", "v7"
	case "armel":
		arch, variant = "arm", "v6"
	case "arm":
		switch variant {
		case "", "7":
			variant = "v7"
		case "5", "6", "8":
			variant = "v" + variant
		}
	case "i386", "i486", "i586", "i686", "386":
		arch = "386"
	}
	p.Architecture, p.Variant = arch, variant
	return p
}

// Format returns "os/arch[/variant]".
func Format(p ocispec.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Match reports whether have (an index entry's platform) satisfies want.
// Both are normalised first. An empty variant in want (other than arm's
// implied v7) accepts any variant; an OSVersion in want must match exactly.
func Match(want, have ocispec.Platform) bool {
	w, h := Normalize(want), Normalize(have)
	if w.OS != h.OS || w.Architecture != h.Architecture {
		return false
	}
	if w.Variant != "" && w.Variant != h.Variant {
		return false
	}
	if w.OSVersion != "" && w.OSVersion != h.OSVersion {
		return false
	}
	return true
}

// Default is the platform of the running binary, as skopeo picks on an index
// when no platform is asked for.
func Default() ocispec.Platform {
	p := ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	if runtime.GOOS == "darwin" {
		// Images for macOS hosts are linux images run in a VM.
		p.OS = "linux"
	}
	if runtime.GOARCH == "arm" {
		p.Variant = "v7"
	}
	return Normalize(p)
}

// Select returns the indices of the entries in descs whose platform matches
// any of want, in index order. Entries without a platform never match.
func Select(descs []ocispec.Descriptor, want []ocispec.Platform) []int {
	var out []int
	for i, d := range descs {
		if d.Platform == nil {
			continue
		}
		for _, w := range want {
			if Match(w, *d.Platform) {
				out = append(out, i)
				break
			}
		}
	}
	return out
}
