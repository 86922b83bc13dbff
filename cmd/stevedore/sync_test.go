package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/imagegen"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
)

// syncLayouts makes two layouts, dir/a and dir/b, of 3 distinct images
// each and returns "repo:tag" -> digest.
func syncLayouts(t *testing.T, dir string) map[string]string {
	t.Helper()
	tags := map[string]string{}
	seed := uint64(100)
	for _, repo := range []string{"a", "b"} {
		s, err := layout.Create(filepath.Join(dir, repo))
		if err != nil {
			t.Fatal(err)
		}
		for _, tag := range []string{"1.0", "1.1", "2.0"} {
			seed++
			img, err := imagegen.Write(t.Context(), s, tag, imagegen.Spec{Seed: seed, Layers: []imagegen.Layer{{Size: 4096}, {Size: 2048, Compressible: true}}})
			if err != nil {
				t.Fatal(err)
			}
			tags[repo+":"+tag] = img.Manifest.Digest.String()
		}
	}
	return tags
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func TestSyncCLIFailureExitStatusAndReport(t *testing.T) {
	needPlugin(t, "oci")
	dir := t.TempDir()
	want := syncLayouts(t, dir)
	// Break b:1.1 at the source: its config blob is gone.
	s, err := layout.Open(filepath.Join(dir, "b"))
	if err != nil {
		t.Fatal(err)
	}
	desc, err := s.Resolve(t.Context(), "1.1")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.ReadBlob(t.Context(), desc, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Config struct{ Digest string } }
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	cfg := strings.TrimPrefix(m.Config.Digest, "sha256:")
	if err := os.Remove(filepath.Join(dir, "b", "blobs", "sha256", cfg)); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "mirror.yaml")
	yml := fmt.Sprintf("sync:\n  - {source: 'oci:%[1]s/a', target: 'oci:%[1]s/m/a'}\n  - {source: 'oci:%[1]s/b', target: 'oci:%[1]s/m/b'}\n", dir)
	if err := os.WriteFile(file, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(dir, "report.json")
	_, stderr, err := runCLI(t, "sync", "-f", file, "--keep-going", "--report", report)
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit status %d, want 1; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "sync: 5 copied, 0 skipped, 1 failed") {
		t.Errorf("summary missing from stderr:\n%s", stderr)
	}
	b, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep host.SyncReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Copied != 5 || rep.Failed != 1 || len(rep.Images) != 6 {
		t.Fatalf("report: %s", b)
	}
	for _, r := range rep.Images {
		if r.Action == host.ActionFailed {
			if !strings.HasSuffix(r.Target, "/m/b:1.1") || !strings.Contains(r.Error, cfg) {
				t.Errorf("failure entry %+v", r)
			}
			continue
		}
		key := r.Target[strings.LastIndex(r.Target, "/")+1:]
		if r.TargetDigest.String() != want[key] {
			t.Errorf("%s: %s, want %s", r.Target, r.TargetDigest, want[key])
		}
	}

	// Dry run of the same: stdout lists exactly the image still missing.
	stdout, stderr, err := runCLI(t, "sync", "-f", file, "--dry-run")
	if exitCode(err) != 0 {
		t.Fatalf("dry run: %v\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "would-copy oci:"+dir+"/b:1.1 -> oci:"+dir+"/m/b:1.1 ") {
		t.Fatalf("dry run stdout:\n%s", stdout)
	}
}

func TestSyncCLISkopeoForms(t *testing.T) {
	needPlugin(t, "docker")
	src := registrytest.Start(t, registrytest.Options{TLS: true})
	dst := registrytest.Start(t, registrytest.Options{TLS: true})
	var want []string
	for _, tag := range []string{"1.0", "1.1", "2.0"} {
		img := src.Seed("team/app", tag, 2, 2048)
		want = append(want, tag+"="+img.Manifest.Digest.String())
	}
	sort.Strings(want)
	tagsAt := func(repo string) []string {
		out := mustRun(t, "list-tags", "--cert-dir", dst.CertDir, "docker://"+dst.Addr+"/"+repo)
		var list struct{ Tags []string }
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tag := range list.Tags {
			var info struct{ Digest string }
			if err := json.Unmarshal([]byte(mustRun(t, "inspect", "--no-tags", "--cert-dir", dst.CertDir, "docker://"+dst.Addr+"/"+repo+":"+tag)), &info); err != nil {
				t.Fatal(err)
			}
			got = append(got, tag+"="+info.Digest)
		}
		sort.Strings(got)
		return got
	}
	// skopeo's command line: DESTINATION is a prefix, the repository keeps
	// its last path element.
	mustRun(t, "sync", "--src", "docker", "--dest", "docker", "--src-cert-dir", src.CertDir, "--dest-cert-dir", dst.CertDir,
		src.Addr+"/team/app", dst.Addr+"/mirror")
	if got := tagsAt("mirror/app"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("mirror/app: %v, want %v", got, want)
	}
	// skopeo's YAML with --src yaml.
	file := filepath.Join(t.TempDir(), "skopeo.yaml")
	yml := fmt.Sprintf("%s:\n  images-by-tag-regex:\n    team/app: '^1\\.'\n  cert-dir: %s\n", src.Addr, src.CertDir)
	if err := os.WriteFile(file, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "sync", "--src", "yaml", "--dest", "docker", "--dest-cert-dir", dst.CertDir, file, dst.Addr+"/from-yaml")
	if got := tagsAt("from-yaml/app"); len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("from-yaml/app: %v, want %v", got, want[:2])
	}
	// Ours, a whole registry from its catalog.
	whole := filepath.Join(t.TempDir(), "whole.yaml")
	yml = fmt.Sprintf("sync:\n  - {type: registry-prefix, source: '%s', target: '%s/whole', source-cert-dir: %s, target-cert-dir: %s}\n", src.Addr, dst.Addr, src.CertDir, dst.CertDir)
	if err := os.WriteFile(whole, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "sync", "-f", whole)
	if got := tagsAt("whole/team/app"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("whole/team/app: %v, want %v", got, want)
	}
	if out := mustRun(t, "list-repositories", "--cert-dir", dst.CertDir, "docker://"+dst.Addr+"/whole"); out != dst.Addr+"/whole/team/app\n" {
		t.Fatalf("list-repositories printed %q", out)
	}
	// The same from the command line, under a prefix of the source.
	mustRun(t, "sync", "--prefix", "--src-cert-dir", src.CertDir, "--dest-cert-dir", dst.CertDir, src.Addr+"/team", dst.Addr+"/cli")
	if got := tagsAt("cli/app"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("cli/app: %v, want %v", got, want)
	}
}

// A dry run lists on stdout, and counts, the referrers a real run would
// copy for images already up to date: they are writes too.
func TestSyncDryRunListsReferrersToCopy(t *testing.T) {
	upToDate := host.SyncImageResult{Action: host.ActionSkipped, Reason: host.ReasonUpToDate, Source: "docker://a/r:1", Target: "docker://b/r:1", Referrers: 2}
	if !dryRunListed(upToDate) {
		t.Errorf("an up-to-date image with referrers to copy is not listed")
	}
	upToDate.Referrers = 0
	if dryRunListed(upToDate) {
		t.Errorf("an up-to-date image with nothing to copy is listed")
	}
	if !dryRunListed(host.SyncImageResult{Action: host.ActionWouldCopy}) || !dryRunListed(host.SyncImageResult{Action: host.ActionWouldPrune}) {
		t.Errorf("would-copy and would-prune are not listed")
	}
	rep := &host.SyncReport{DryRun: true, Skipped: 1, Referrers: 2}
	if got := summaryLine(rep); !strings.Contains(got, "1 up to date, 0 failed, 0 to prune, 2 referrers to copy, in ") {
		t.Errorf("summary %q", got)
	}
	rep.Referrers = 0
	if got := summaryLine(rep); strings.Contains(got, "referrers") {
		t.Errorf("summary %q", got)
	}
}
