package host_test

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/host/syncspec"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/plugins/archive/archive"
	"github.com/stevedore-oci/stevedore/plugins/dir/dirtransport"
	"github.com/stevedore-oci/stevedore/plugins/oci-layout/ocilayout"
	"github.com/stevedore-oci/stevedore/plugins/static/statictree"
)

// Targets written at the end (archives, dir:, static trees) take a whole
// repository in one sync: the job commits them once, with every image in;
// a docker-archive names each image NAME:TAG; a static target names a
// repository of the tree; a dir:, which holds one image, is refused before
// anything is written.
func TestSyncIntoCommittedTargets(t *testing.T) {
	ctx := context.Background()
	f := newSyncFixture(t)
	src := filepath.Join(t.TempDir(), "alpha")
	f.writeLayout(t, src, "alpha")
	h, err := host.New(host.Options{SearchPath: []string{t.TempDir()}, InProcess: []pluginapi.Plugin{
		ocilayout.New(), archive.New(nil), dirtransport.New(nil), statictree.New(nil)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	out := t.TempDir()
	want := append([]string(nil), syncTags...)
	sort.Strings(want)

	run := func(target string) (*host.SyncReport, error) {
		t.Helper()
		res, err := syncspec.Parse([]byte("sync:\n  - source: oci:"+src+"\n    target: "+target+"\n"), syncspec.Options{})
		if err != nil {
			t.Fatalf("parse %s: %v", target, err)
		}
		return h.Sync(ctx, res.Jobs, host.SyncOptions{})
	}
	tags := func(location string) []string {
		t.Helper()
		l, err := h.ListTags(ctx, location, nil)
		if err != nil {
			t.Fatalf("list tags of %s: %v", location, err)
		}
		sort.Strings(l.Tags)
		return l.Tags
	}

	for _, target := range []string{"oci-archive:" + filepath.Join(out, "o.tar"), "static:" + filepath.Join(out, "tree") + ":team/app"} {
		rep, err := run(target)
		if err != nil || rep.Copied != len(syncTags) {
			t.Fatalf("sync to %s: %v, %d copied; want %d", target, err, rep.Copied, len(syncTags))
		}
		if got := tags(target); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s holds %v, want %v", target, got, want)
		}
	}
	// Again, with nothing new: the archive is up to date and left alone
	// (a commit would write it whole again).
	before, err := os.Stat(filepath.Join(out, "o.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := run("oci-archive:" + filepath.Join(out, "o.tar")); err != nil || rep.Copied != 0 {
		t.Fatalf("unchanged sync: %v, %d copied", err, rep.Copied)
	}
	if after, err := os.Stat(filepath.Join(out, "o.tar")); err != nil || !os.SameFile(before, after) {
		t.Fatalf("an unchanged sync rewrote the archive: %v", err)
	}

	// A docker-archive names the images after the repository the target
	// names; a layout has no name of its own to give them.
	da := filepath.Join(out, "d.tar")
	if _, err := run("docker-archive:" + da); !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "has no repository name") {
		t.Fatalf("sync of a layout to an unnamed docker-archive: %v, want a refusal asking for a name", err)
	}
	if _, err := os.Stat(da); !os.IsNotExist(err) {
		t.Fatalf("the refused sync wrote %s: %v", da, err)
	}
	if rep, err := run("docker-archive:" + da + ":mirror/alpha"); err != nil || rep.Copied != len(syncTags) {
		t.Fatalf("sync to a docker-archive: %v", err)
	}
	var names []string
	for _, item := range dockerArchiveItems(t, da) {
		names = append(names, item.RepoTags...)
	}
	sort.Strings(names)
	var wantNames []string
	for _, tag := range want {
		wantNames = append(wantNames, "mirror/alpha:"+tag)
	}
	if !reflect.DeepEqual(names, wantNames) {
		t.Fatalf("docker-archive names %v, want %v", names, wantNames)
	}

	dir := filepath.Join(out, "dir")
	if _, err := run("dir:" + dir); !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "holds one image") {
		t.Fatalf("sync of a repository to dir: %v, want a refusal", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the refused sync wrote %s: %v", dir, err)
	}
}

// A prefix sync into a static tree makes each repository a name in the
// tree (served by one web server configuration), not a tree of its own.
func TestSyncPrefixIntoStaticTree(t *testing.T) {
	ctx := context.Background()
	f := newSyncFixture(t)
	src := t.TempDir()
	f.writeLayout(t, filepath.Join(src, "team", "api"), "alpha")
	f.writeLayout(t, filepath.Join(src, "team", "web"), "bravo")
	h, err := host.New(host.Options{SearchPath: []string{t.TempDir()}, InProcess: []pluginapi.Plugin{ocilayout.New(), statictree.New(nil)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	tree := filepath.Join(t.TempDir(), "tree")
	for _, target := range []string{"static:" + tree, "static:" + tree + ":mirror"} {
		res, err := syncspec.Parse([]byte("sync:\n  - type: registry-prefix\n    source: oci:"+src+"\n    target: "+target+"\n"), syncspec.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := h.Sync(ctx, res.Jobs, host.SyncOptions{}); err != nil || rep.Copied != 2*len(syncTags) {
			t.Fatalf("prefix sync to %s: %v", target, err)
		}
	}
	for _, name := range []string{"team/api", "team/web", "mirror/team/api", "mirror/team/web"} {
		l, err := h.ListTags(ctx, "static:"+tree+":"+name, nil)
		if err != nil || len(l.Tags) != len(syncTags) {
			t.Fatalf("static tree repository %s: %v %v", name, l, err)
		}
	}
}

type dockerArchiveItem struct {
	Config   string
	RepoTags []string
}

// dockerArchiveItems reads a docker-archive's manifest.json.
func dockerArchiveItems(t *testing.T, path string) []dockerArchiveItem {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("%s has no manifest.json", path)
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == "manifest.json" {
			var items []dockerArchiveItem
			if err := json.NewDecoder(tr).Decode(&items); err != nil {
				t.Fatal(err)
			}
			return items
		}
	}
}

// sync --referrers from a source that cannot list referrers (a
// docker-archive) says so once, instead of copying none silently.
func TestSyncReferrersWarnsWhenSourceCannotList(t *testing.T) {
	ctx := context.Background()
	f := newSyncFixture(t)
	src := filepath.Join(t.TempDir(), "alpha")
	f.writeLayout(t, src, "alpha")
	var logs strings.Builder
	h, err := host.New(host.Options{SearchPath: []string{t.TempDir()}, Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn}),
		InProcess: []pluginapi.Plugin{ocilayout.New(), archive.New(nil)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	da := filepath.Join(t.TempDir(), "d.tar")
	if _, err := h.Copy(ctx, "oci:"+src+":1.0.0", "docker-archive:"+da+":app:1.0.0", host.CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	run := func(source string) string {
		t.Helper()
		logs.Reset()
		res, err := syncspec.Parse([]byte("sync:\n  - source: "+source+"\n    target: oci:"+filepath.Join(t.TempDir(), "out")+":x\n    referrers: true\n"), syncspec.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Sync(ctx, res.Jobs, host.SyncOptions{}); err != nil {
			t.Fatalf("sync from %s: %v", source, err)
		}
		return logs.String()
	}
	if got := run("docker-archive:" + da + ":app:1.0.0"); strings.Count(got, "cannot list referrers") != 1 {
		t.Fatalf("sync --referrers from a docker-archive logged %q, want one warning that it cannot list referrers", got)
	}
	if got := run("oci:" + src + ":1.0.0"); strings.Contains(got, "cannot list referrers") {
		t.Fatalf("sync --referrers from a layout warned: %q", got)
	}
}
