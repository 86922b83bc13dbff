package server_test

import (
	"encoding/xml"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/stevedore-oci/stevedore/server"
)

// The OCI distribution-spec conformance suite, pinned.
const (
	conformanceModule  = "github.com/opencontainers/distribution-spec/conformance"
	conformanceVersion = "v0.0.0-20260831232431-97274622c111"
)

func inCI() bool { return os.Getenv("CI") == "true" }

// conformanceBinary builds the suite once per version into the user cache
// directory and returns its path.
func conformanceBinary(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "stevedore-test", "distribution-spec-conformance-"+conformanceVersion)
	bin := filepath.Join(dir, "conformance")
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mod := t.TempDir()
	if err := os.WriteFile(filepath.Join(mod, "go.mod"), []byte("module conformancebuild\n\ngo 1.26.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	run := func(args ...string) error {
		cmd := exec.Command("go", args...)
		cmd.Dir, cmd.Env = mod, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	tmp := bin + fmt.Sprintf(".tmp-%d", os.Getpid())
	if err := run("get", "-t", conformanceModule+"@"+conformanceVersion); err == nil {
		err = run("build", "-o", tmp, conformanceModule)
		if err == nil {
			err = os.Rename(tmp, bin)
		}
		if err == nil {
			return bin
		}
		t.Logf("%v", err)
	} else {
		t.Logf("%v", err)
	}
	if inCI() {
		t.Fatalf("cannot build the OCI conformance suite %s@%s (CI=true: not skipping)", conformanceModule, conformanceVersion)
	}
	t.Skipf("cannot build the OCI conformance suite %s@%s (needs the Go module proxy); set CI=true to make this a failure", conformanceModule, conformanceVersion)
	return ""
}

// junit is the part of the suite's junit.xml we read.
type junit struct {
	Suites []struct {
		Cases []struct {
			Name    string    `xml:"name,attr"`
			Class   string    `xml:"classname,attr"`
			Status  string    `xml:"status,attr"`
			Out     string    `xml:"system-out"`
			Skipped *struct{} `xml:"skipped"`
			Failure *struct {
				Message string `xml:"message,attr"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:"message,attr"`
			} `xml:"error"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

type conformanceSummary struct {
	Total, Passed, Failed, Skipped int
	Failures                       []string
	SkippedNames                   []string
	APIs, Data                     map[string]string
}

// runConformance runs the whole suite against url and returns its summary.
func runConformance(t *testing.T, bin, registry string, extraEnv ...string) conformanceSummary {
	t.Helper()
	work := t.TempDir() // clean: the suite reads ./oci-conformance.yaml
	results := filepath.Join(work, "results")
	if keep := os.Getenv("STEVEDORE_CONFORMANCE_RESULTS"); keep != "" {
		results = filepath.Join(keep, strings.ReplaceAll(t.Name(), "/", "_"))
	}
	cmd := exec.Command(bin)
	cmd.Dir = work
	cmd.Env = append(os.Environ(),
		"OCI_REGISTRY="+registry,
		"OCI_TLS=disabled",
		"OCI_REPO1=conformance/repo1",
		"OCI_REPO2=conformance/repo2",
		"OCI_VERSION=1.1",
		"OCI_RESULTS_DIR="+results,
		// Optional features, off by default in the suite: all on.
		"OCI_API_BLOBS_UPLOAD_CANCEL=true",
		"OCI_API_BLOBS_DIGEST_HEADER=true",
		"OCI_API_MANIFESTS_DIGEST_HEADER=true",
		"OCI_API_MANIFESTS_TAG_PARAM=true",
	)
	cmd.Env = append(cmd.Env, extraEnv...)
	out, err := cmd.CombinedOutput()
	t.Logf("conformance exit: %v", err)
	var res struct {
		APIs map[string]string `yaml:"apis"`
		Data map[string]string `yaml:"data"`
	}
	b, rerr := os.ReadFile(filepath.Join(results, "results.yaml"))
	if rerr != nil {
		t.Fatalf("conformance suite wrote no results.yaml (%v); output:\n%s", rerr, out)
	}
	if err := yaml.Unmarshal(b, &res); err != nil {
		t.Fatalf("results.yaml: %v", err)
	}
	jb, jerr := os.ReadFile(filepath.Join(results, "junit.xml"))
	if jerr != nil {
		t.Fatalf("conformance suite wrote no junit.xml: %v", jerr)
	}
	var j junit
	if err := xml.Unmarshal(jb, &j); err != nil {
		t.Fatalf("junit.xml: %v", err)
	}
	s := conformanceSummary{APIs: res.APIs, Data: res.Data}
	for _, su := range j.Suites {
		for _, c := range su.Cases {
			s.Total++
			switch {
			case c.Status == "failure" || c.Status == "error":
				s.Failed++
				s.Failures = append(s.Failures, c.Name+": "+strings.ReplaceAll(tail(c.Out, 400), "\n", " | "))
			case c.Status == "skipped":
				s.Skipped++
				s.SkippedNames = append(s.SkippedNames, c.Name)
			case c.Failure != nil:
				s.Failed++
				s.Failures = append(s.Failures, c.Class+"/"+c.Name+": "+c.Failure.Message)
			case c.Error != nil:
				s.Failed++
				s.Failures = append(s.Failures, c.Class+"/"+c.Name+": "+c.Error.Message)
			case c.Skipped != nil:
				s.Skipped++
				s.SkippedNames = append(s.SkippedNames, c.Class+"/"+c.Name)
			default:
				s.Passed++
			}
		}
	}
	if s.Failed > 0 || err != nil {
		t.Logf("conformance output (tail):\n%s", tail(string(out), 6000))
	}
	return s
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func (s conformanceSummary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "leaf tests: %d, passed: %d, failed: %d, skipped: %d\n", s.Total, s.Passed, s.Failed, s.Skipped)
	keys := func(m map[string]string) []string {
		var k []string
		for x := range m {
			k = append(k, x)
		}
		sort.Strings(k)
		return k
	}
	b.WriteString("APIs:\n")
	for _, k := range keys(s.APIs) {
		fmt.Fprintf(&b, "  %s: %s\n", k, s.APIs[k])
	}
	b.WriteString("Data:\n")
	for _, k := range keys(s.Data) {
		fmt.Fprintf(&b, "  %s: %s\n", k, s.Data[k])
	}
	for _, f := range s.Failures {
		fmt.Fprintf(&b, "FAIL %s\n", f)
	}
	for _, f := range s.SkippedNames {
		fmt.Fprintf(&b, "SKIP %s\n", f)
	}
	return b.String()
}

func checkSummary(t *testing.T, s conformanceSummary) {
	t.Helper()
	t.Logf("conformance summary:\n%s", s)
	if s.Total == 0 {
		t.Fatal("conformance suite ran no tests")
	}
	if s.Failed > 0 {
		t.Errorf("%d conformance tests failed", s.Failed)
	}
	if s.Skipped > 0 {
		t.Errorf("%d conformance tests skipped; every test should run", s.Skipped)
	}
	for k, v := range s.APIs {
		if v != "Pass" {
			t.Errorf("API %s: %s", k, v)
		}
	}
	for k, v := range s.Data {
		if v != "Pass" && v != "Disabled" {
			t.Errorf("data %s: %s", k, v)
		}
	}
	if out := os.Getenv("STEVEDORE_CONFORMANCE_SUMMARY"); out != "" {
		if err := os.WriteFile(out, []byte(s.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}

func TestConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suite: not in -short mode")
	}
	bin := conformanceBinary(t)
	for _, c := range []struct {
		name   string
		sparse bool
	}{{"default", false}, {"sparse", true}} {
		t.Run(c.name, func(t *testing.T) {
			// Sparse manifests (referenced content not pushed) are refused
			// by default, so the suite's sparse data runs only against a
			// server that allows them.
			h, err := server.New(server.Options{Root: t.TempDir(), AnonymousWrite: true, AllowSparseManifests: c.sparse})
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(h)
			defer ts.Close()
			u, _ := url.Parse(ts.URL)
			start := time.Now()
			s := runConformance(t, bin, u.Host, fmt.Sprintf("OCI_DATA_SPARSE=%v", c.sparse))
			t.Logf("suite took %v", time.Since(start).Round(time.Millisecond))
			checkSummary(t, s)
		})
	}
}

func TestConformanceWithAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("conformance suite: not in -short mode")
	}
	bin := conformanceBinary(t)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htp := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htp, []byte("tester:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []struct {
		name  string
		token bool
	}{{"basic", false}, {"token", true}} {
		t.Run(mode.name, func(t *testing.T) {
			h, err := server.New(server.Options{Root: t.TempDir(), HtpasswdFile: htp, Token: mode.token})
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(h)
			defer ts.Close()
			u, _ := url.Parse(ts.URL)
			s := runConformance(t, bin, u.Host, "OCI_USERNAME=tester", "OCI_PASSWORD=s3cret")
			checkSummary(t, s)
		})
	}
}
