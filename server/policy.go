package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/stevedore-oci/stevedore/core"
)

// Policy grants actions on repositories to users. A request is allowed when
// any rule matches its user, repository and action; nothing else is.
//
//	rules:
//	  - users: [alice, bob]         # "*" = any authenticated user, "anonymous" = no credentials
//	    repositories: ["team/*"]    # "*" matches any characters, "/" included
//	    actions: [pull, push, delete]
//
// JSON with the same fields is accepted too.
type Policy struct {
	Rules []Rule `yaml:"rules" json:"rules"`
}

// Rule is one grant of a Policy.
type Rule struct {
	Users        []string `yaml:"users" json:"users"`
	Repositories []string `yaml:"repositories" json:"repositories"`
	Actions      []Action `yaml:"actions" json:"actions"`

	res []*regexp.Regexp
}

// LoadPolicy reads a policy file.
func LoadPolicy(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	var p Policy
	// Unknown keys are errors: a rule with "user:" for "users:" granted
	// nothing, and the server started refusing what it was meant to allow.
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("policy %s: %s: %w", path, policyYAMLError(err), core.ErrInvalid)
	}
	for i, r := range p.Rules {
		if len(r.Users) == 0 || len(r.Repositories) == 0 || len(r.Actions) == 0 {
			return nil, fmt.Errorf("policy %s: rule %d grants nothing: it needs users, repositories and actions: %w", path, i+1, core.ErrInvalid)
		}
	}
	if err := p.compile(); err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return &p, nil
}

func (p *Policy) compile() error {
	for i := range p.Rules {
		r := &p.Rules[i]
		r.res = r.res[:0]
		for _, a := range r.Actions {
			if a != ActionPull && a != ActionPush && a != ActionDelete {
				return fmt.Errorf("rule %d: unknown action %q (want pull, push or delete): %w", i+1, a, core.ErrInvalid)
			}
		}
		for _, pat := range r.Repositories {
			re, err := regexp.Compile("^" + strings.ReplaceAll(regexp.QuoteMeta(pat), `\*`, ".*") + "$")
			if err != nil {
				return fmt.Errorf("rule %d: repository pattern %q: %v: %w", i+1, pat, err, core.ErrInvalid)
			}
			r.res = append(r.res, re)
		}
	}
	return nil
}

// Allows reports whether the policy lets id do act on repo.
func (p *Policy) Allows(id Identity, repo string, act Action) bool {
	for _, r := range p.Rules {
		if !r.matchesUser(id) || !slices.Contains(r.Actions, act) {
			continue
		}
		for _, re := range r.res {
			if re.MatchString(repo) {
				return true
			}
		}
	}
	return false
}

func (r *Rule) matchesUser(id Identity) bool {
	for _, u := range r.Users {
		switch {
		case u == "anonymous" && id.Anonymous:
			return true
		case u == "*" && !id.Anonymous:
			return true
		case u == id.User && !id.Anonymous:
			return true
		}
	}
	return false
}

// anonymousAny reports whether any rule grants anonymous users something.
func (p *Policy) anonymousAny() bool {
	for _, r := range p.Rules {
		if slices.Contains(r.Users, "anonymous") {
			return true
		}
	}
	return false
}

// unknownPolicyKey is yaml.v3's unknown-field error, which names Go types.
var unknownPolicyKey = regexp.MustCompile(`field (\S+) not found in type [\w.]+`)

// policyYAMLError is a decoding error on one line, in the file's words.
func policyYAMLError(err error) string {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = "yaml: " + strings.Join(te.Errors, "; ")
	}
	msg = unknownPolicyKey.ReplaceAllString(msg, `unknown key "$1" (want rules: users, repositories, actions)`)
	return strings.Join(strings.Fields(msg), " ")
}
