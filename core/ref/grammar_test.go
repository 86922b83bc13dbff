package ref

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
		if got, want := ValidTag(s), tagOracle.MatchString(s); got != want {
			t.Errorf("ValidTag(%q) = %v, want %v", s, got, want)
		}
		if got, want := ValidRepository(s), repoOracle.MatchString(s); got != want {
			t.Errorf("ValidRepository(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzGrammar(f *testing.F) {
	for _, s := range grammarSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidTag(s), tagOracle.MatchString(s); got != want {
			t.Fatalf("ValidTag(%q) = %v, regexp says %v", s, got, want)
		}
		if got, want := ValidRepository(s), repoOracle.MatchString(s); got != want {
			t.Fatalf("ValidRepository(%q) = %v, regexp says %v", s, got, want)
		}
	})
}
