package syncspec

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/stevedore-oci/stevedore/core"
)

// TagRules are the tag filters of a sync entry, as written in the file.
type TagRules struct {
	// Allow keeps only tags matching one of these regexes (all tags when
	// empty). Regexes match the whole tag.
	Allow []string `yaml:"allow,omitempty" json:"allow,omitempty"`
	// Deny drops tags matching one of these regexes (whole tag).
	Deny []string `yaml:"deny,omitempty" json:"deny,omitempty"`
	// Semver keeps tags that parse as a version (a leading "v" and missing
	// minor or patch numbers are accepted) and satisfy the constraint,
	// e.g. ">=1.2 <2", "~1.4", "^2". Pre-releases match only constraints
	// that name one.
	Semver string `yaml:"semver,omitempty" json:"semver,omitempty"`
	// Newest keeps the N highest of the tags left: versions ordered by
	// semver, ranked above tags that are not versions, which are ordered
	// naturally (digit runs compared as numbers). 0 keeps all.
	Newest int `yaml:"newest,omitempty" json:"newest,omitempty"`
}

// Filter is a compiled set of tag rules. It implements host.TagFilter.
type Filter struct {
	allow, deny []*regexp.Regexp
	constraint  *semver.Constraints
	newest      int
}

// anchor makes a regex match whole tags only: "1\.2" must not select
// "1.20" or "v1.2-rc".
func anchor(expr string) string { return `^(?:` + expr + `)$` }

// compileAll compiles regexes, anchored unless raw.
func compileAll(what string, exprs []string, raw bool) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, e := range exprs {
		// The expression is checked as written: anchored first, "v(1"
		// was reported as "^(?:v(1)$", and "a)|(b", which is no
		// regex, compiled as "^(?:a)|(b)$", anchored at one end only.
		re, err := regexp.Compile(e)
		if err == nil && !raw {
			re, err = regexp.Compile(anchor(e))
		}
		if err != nil {
			return nil, fmt.Errorf("%s regex %q: %v: %w", what, e, err, core.ErrInvalid)
		}
		out = append(out, re)
	}
	return out, nil
}

// NewFilter compiles rules. A nil result means "every tag".
func NewFilter(r *TagRules) (*Filter, error) {
	if r == nil || (len(r.Allow) == 0 && len(r.Deny) == 0 && r.Semver == "" && r.Newest == 0) {
		return nil, nil
	}
	if r.Newest < 0 {
		return nil, fmt.Errorf("tags.newest %d: want 0 or more: %w", r.Newest, core.ErrInvalid)
	}
	f := &Filter{newest: r.Newest}
	var err error
	if f.allow, err = compileAll("tags.allow", r.Allow, false); err != nil {
		return nil, err
	}
	if f.deny, err = compileAll("tags.deny", r.Deny, false); err != nil {
		return nil, err
	}
	if r.Semver != "" {
		c, err := semver.NewConstraint(r.Semver)
		if err != nil {
			return nil, fmt.Errorf("tags.semver %q: %v: %w", r.Semver, err, core.ErrInvalid)
		}
		f.constraint = c
	}
	return f, nil
}

// Match implements host.TagFilter: allow, deny and semver.
func (f *Filter) Match(tag string) bool {
	if len(f.allow) > 0 {
		ok := false
		for _, re := range f.allow {
			if re.MatchString(tag) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	for _, re := range f.deny {
		if re.MatchString(tag) {
			return false
		}
	}
	if f.constraint != nil {
		v, err := semver.NewVersion(tag)
		if err != nil || !f.constraint.Check(v) {
			return false
		}
	}
	return true
}

// Select implements host.TagFilter: the matching tags, then the newest N.
func (f *Filter) Select(tags []string) []string {
	var out []string
	for _, t := range tags {
		if f.Match(t) {
			out = append(out, t)
		}
	}
	if f.newest > 0 && len(out) > f.newest {
		SortNewestFirst(out)
		out = out[:f.newest]
	}
	sort.Strings(out)
	return out
}

// SortNewestFirst orders tags from newest to oldest as "newest N" ranks
// them: versions (semver, highest first) before other tags, which are in
// descending natural order.
func SortNewestFirst(tags []string) {
	type key struct {
		tag string
		v   *semver.Version
	}
	keys := make([]key, len(tags))
	for i, t := range tags {
		keys[i].tag = t
		if v, err := semver.NewVersion(t); err == nil {
			keys[i].v = v
		}
	}
	sort.SliceStable(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		switch {
		case a.v != nil && b.v != nil:
			if c := a.v.Compare(b.v); c != 0 {
				return c > 0
			}
			// 1.2 and v1.2.0 are the same version: order by text.
			return a.tag > b.tag
		case a.v != nil:
			return true
		case b.v != nil:
			return false
		}
		return naturalLess(b.tag, a.tag)
	})
	for i := range keys {
		tags[i] = keys[i].tag
	}
}

// naturalLess compares strings with digit runs as numbers ("a9" < "a10").
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := isDigit(a[0]), isDigit(b[0])
		if da && db {
			na, ra := digitRun(a)
			nb, rb := digitRun(b)
			// Compare numerically: longer (without leading zeros) is larger.
			ta, tb := strings.TrimLeft(na, "0"), strings.TrimLeft(nb, "0")
			if len(ta) != len(tb) {
				return len(ta) < len(tb)
			}
			if ta != tb {
				return ta < tb
			}
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func digitRun(s string) (string, string) {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

// regexFilter is skopeo's images-by-tag-regex: an unanchored match, as
// skopeo does it (Go's regexp.MatchString finds the pattern anywhere).
type regexFilter struct{ re *regexp.Regexp }

func (f regexFilter) Match(tag string) bool { return f.re.MatchString(tag) }

func (f regexFilter) Select(tags []string) []string {
	var out []string
	for _, t := range tags {
		if f.Match(t) {
			out = append(out, t)
		}
	}
	sort.Strings(out)
	return out
}

// Immutable compiles immutable-tag regexes (anchored) into a predicate;
// nil when there are none.
func Immutable(exprs []string) (func(string) bool, error) {
	res, err := compileAll("immutable", exprs, false)
	if err != nil || len(res) == 0 {
		return nil, err
	}
	return func(tag string) bool {
		for _, re := range res {
			if re.MatchString(tag) {
				return true
			}
		}
		return false
	}, nil
}
