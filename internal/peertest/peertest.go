// Package peertest runs real peer tools (skopeo, nginx, umoci) from tests:
// a test that needs one is skipped with a clear message when the tool is
// missing on a developer's machine, and fails in CI (CI=true), where the
// peer must be there and the test must run.
package peertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Need returns the path of tool, skipping (or, in CI, failing) the test when
// it is not installed.
func Need(t testing.TB, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI (make test-deps installs it): %v", tool, err)
		}
		t.Skipf("%s not installed; run make test-deps", tool)
	}
	return p
}

// Run runs tool and returns its stdout, failing the test with stderr on
// error.
func Run(t testing.TB, tool string, args ...string) string {
	t.Helper()
	Need(t, tool)
	cmd := exec.Command(tool, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// Skopeo runs skopeo without a signature policy.
func Skopeo(t testing.TB, args ...string) string {
	t.Helper()
	return Run(t, "skopeo", append([]string{"--insecure-policy"}, args...)...)
}

// SignatureFiles maps the names of the signature files of a dir: image
// (signature-N, and <hex>.signature-N for the children of an index, as
// skopeo writes them) to their contents.
func SignatureFiles(t testing.TB, dir string) map[string]string {
	t.Helper()
	return Files(t, dir, "signature-")
}

// Files maps the names of the files in dir that contain substr (all for
// "") to their contents.
func Files(t testing.TB, dir, substr string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		if strings.Contains(e.Name(), substr) {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = string(b)
		}
	}
	return out
}
