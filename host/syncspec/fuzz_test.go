package syncspec

import (
	"errors"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
)

// FuzzParse: a sync file is input a user wrote, or a tool generated. Parse
// never panics, refuses with a one-line error wrapping a core sentinel, and
// every job it accepts names a source and a target.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"sync:\n  - {source: reg.example/a, target: reg2.example/b}\n",
		"version: 1\ndefaults: {referrers: true, immutable: ['v.*'], tags: {semver: '>=1'}}\nregistries: {docker.io: {burst: 2}}\nsync:\n  - {type: registry-prefix, source: quay.io/acme, target: 'oci:/srv', repositories: [a, b/c]}\n",
		"sync:\n  - {type: registry-prefix, source: '127.0.0.1:5000', target: 'docker://r/m/'}\n",
		"reg.example:\n  images:\n    a: ['1.0', 'sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef']\n  images-by-tag-regex:\n    b: '^1'\n  tls-verify: false\n",
		"sync:\n  - source: a\n    target: b\n    creds: ${U}:${P}\n", "sync: [", "", "- a", "{}",
	} {
		f.Add([]byte(s))
	}
	env := func(k string) (string, bool) { return map[string]string{"U": "u", "P": "p"}[k], k == "U" || k == "P" }
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, opts := range []Options{{LookupEnv: env}, {LookupEnv: env, Target: "reg.example/mirror"}} {
			res, err := Parse(data, opts)
			if err != nil {
				if !errors.Is(err, core.ErrInvalid) && !errors.Is(err, core.ErrUnsupported) {
					t.Fatalf("error wraps no sentinel: %v", err)
				}
				if strings.ContainsAny(err.Error(), "\n\r") {
					t.Fatalf("error is not one line: %q", err)
				}
				continue
			}
			for _, j := range res.Jobs {
				if j.Source.Location == "" || j.Target.Location == "" || j.Source.Transport == "" || j.Target.Transport == "" {
					t.Fatalf("job without source or target: %+v", j)
				}
			}
		}
	})
}
