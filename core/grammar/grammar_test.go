package grammar

import (
	"regexp"
	"strings"
	"testing"
)

// The grammar as regular expressions, the oracle for the hand-written checks.
var (
	tagOracle  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	repoOracle = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
)

var grammarSeeds = []string{
	"", "a", "v1.2.3", "_x", ".x", "-x", "A-b_c.D", strings.Repeat("t", 128), strings.Repeat("t", 129),
	"lib/app", "a__b", "a___b", "a--b", "a.-b", "a/", "/a", "a//b", "Ab", "a_b-c.d/e", "a.", "a-", "x y", "é",
}

func TestGrammar(t *testing.T) {
	for _, s := range grammarSeeds {
		if got, want := Tag(s), tagOracle.MatchString(s); got != want {
			t.Errorf("Tag(%q) = %v, want %v", s, got, want)
		}
		if got, want := Repository(s), repoOracle.MatchString(s); got != want {
			t.Errorf("Repository(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzGrammar(f *testing.F) {
	for _, s := range grammarSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Tag(s), tagOracle.MatchString(s); got != want {
			t.Fatalf("Tag(%q) = %v, regexp says %v", s, got, want)
		}
		if got, want := Repository(s), repoOracle.MatchString(s); got != want {
			t.Fatalf("Repository(%q) = %v, regexp says %v", s, got, want)
		}
	})
}

func TestLayoutName(t *testing.T) {
	for _, ok := range []string{"v1", "docker.io/library/alpine:3.20", "a@sha256:x", "1+x"} {
		if err := LayoutName(ok); err != nil {
			t.Errorf("LayoutName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-v1", ".x", "a b", "a\nb", "é"} {
		if err := LayoutName(bad); err == nil {
			t.Errorf("LayoutName(%q) accepted", bad)
		}
	}
}
