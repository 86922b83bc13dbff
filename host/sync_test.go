package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/host/syncspec"
)

// layoutWorld is the fixture in one OCI layout per repository.
type layoutWorld struct {
	f        *syncFixture
	src, dst string
	h        *host.Host
}

func newLayoutWorld(t *testing.T) *layoutWorld {
	w := &layoutWorld{f: newSyncFixture(t), src: t.TempDir(), dst: filepath.Join(t.TempDir(), "mirror"), h: newSyncHost(t)}
	for _, repo := range syncRepos {
		w.f.writeLayout(t, layoutDir(w.src, repo), repo)
	}
	return w
}

// yaml builds a stevedore sync file with one entry per repository; extra
// is added to each entry (indented YAML lines).
func (w *layoutWorld) yaml(extra string) string {
	var b strings.Builder
	b.WriteString("sync:\n")
	for _, repo := range syncRepos {
		b.WriteString("  - source: oci:" + layoutDir(w.src, repo) + "\n")
		b.WriteString("    target: oci:" + layoutDir(w.dst, repo) + "\n")
		if extra != "" {
			b.WriteString(extra)
		}
	}
	return b.String()
}

func (w *layoutWorld) run(t *testing.T, yml string, opts host.SyncOptions) (*host.SyncReport, error) {
	t.Helper()
	res, err := syncspec.Parse([]byte(yml), syncspec.Options{})
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, yml)
	}
	rep, err := w.h.Sync(context.Background(), res.Jobs, opts)
	if rep == nil {
		t.Fatalf("no report: %v", err)
	}
	return rep, err
}

func TestSyncLayoutsIncremental(t *testing.T) {
	w := newLayoutWorld(t)
	yml := w.yaml("")
	rep, err := w.run(t, yml, host.SyncOptions{})
	if err != nil {
		t.Fatalf("first sync: %v", err)
	}
	if rep.Copied != 30 || rep.Skipped != 0 || rep.Failed != 0 {
		t.Fatalf("first sync: copied %d skipped %d failed %d, want 30/0/0: %v", rep.Copied, rep.Skipped, rep.Failed, actions(rep))
	}
	// Each target layout gets its distinct blobs once: the base layer, the
	// repository layer, 6 own layers and 6 configs.
	if want := 14 * len(syncRepos); rep.BlobsCopied+rep.BlobsMounted != want || rep.BlobsSkipped != 0 {
		t.Errorf("first sync moved %d blobs (%d copied, %d mounted, %d skipped), want %d", rep.BlobsCopied+rep.BlobsMounted, rep.BlobsCopied, rep.BlobsMounted, rep.BlobsSkipped, want)
	}
	for _, repo := range syncRepos {
		got := layoutTags(t, layoutDir(w.dst, repo))
		for _, tag := range syncTags {
			if got[tag] != w.f.digest(repo, tag) {
				t.Errorf("%s:%s at target = %s, want %s", repo, tag, got[tag], w.f.digest(repo, tag))
			}
		}
	}
	for _, r := range rep.Images {
		if r.Action != host.ActionCopied || r.SourceDigest == "" || r.SourceDigest != r.TargetDigest {
			t.Errorf("image %+v", r)
		}
	}

	rep, err = w.run(t, yml, host.SyncOptions{})
	if err != nil {
		t.Fatalf("second sync: %v", err)
	}
	if rep.Copied != 0 || rep.Skipped != 30 || rep.BlobsCopied != 0 || rep.BlobsMounted != 0 || rep.Manifests != 0 || rep.BytesSent != 0 {
		t.Fatalf("second sync must copy nothing: %+v", rep)
	}
	for _, r := range rep.Images {
		if r.Reason != host.ReasonUpToDate {
			t.Errorf("%s: reason %q", r.Target, r.Reason)
		}
	}

	// A tag that moved at the source is copied again, alone.
	src, err := layout.Open(layoutDir(w.src, "charlie"))
	if err != nil {
		t.Fatal(err)
	}
	moved := w.f.images["charlie:1.0.0"].Manifest
	if err := src.Tag(context.Background(), moved, "latest"); err != nil {
		t.Fatal(err)
	}
	rep, err = w.run(t, yml, host.SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Copied != 1 || rep.Skipped != 29 {
		t.Fatalf("after moving a tag: %v", actions(rep))
	}
	if got := layoutTags(t, layoutDir(w.dst, "charlie"))["latest"]; got != moved.Digest {
		t.Errorf("charlie:latest = %s, want %s", got, moved.Digest)
	}
	if rep.BlobsCopied != 0 {
		t.Errorf("a moved tag whose content the target has must send no blob: %d sent", rep.BlobsCopied)
	}
}

func TestSyncLayoutsFilters(t *testing.T) {
	w := newLayoutWorld(t)
	cases := []struct {
		name  string
		rules string
		want  []string
	}{
		{"allow", "    tags: {allow: ['1\\..*']}\n", []string{"1.0.0", "1.1.0", "1.2.0"}},
		// Anchored: "1.1" alone selects nothing ("1.1.0" does not match whole).
		{"anchored", "    tags: {allow: ['1.1']}\n", nil},
		{"deny", "    tags: {deny: ['latest', '.*-rc.*']}\n", []string{"1.0.0", "1.1.0", "1.2.0", "2.0.0"}},
		{"semver", "    tags: {semver: '>=1.1 <2'}\n", []string{"1.1.0", "1.2.0"}},
		// Pre-releases only when the constraint names one.
		{"semver-pre", "    tags: {semver: '>=2.1.0-0'}\n", []string{"2.1.0-rc1"}},
		{"newest", "    tags: {newest: 2}\n", []string{"2.0.0", "2.1.0-rc1"}},
		{"newest-of-allowed", "    tags: {allow: ['1\\..*'], newest: 2}\n", []string{"1.1.0", "1.2.0"}},
		{"all-rules", "    tags: {allow: ['.*\\.0'], deny: ['1\\.0\\.0'], semver: '<3', newest: 2}\n", []string{"1.2.0", "2.0.0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w.dst = filepath.Join(t.TempDir(), "m")
			rep, err := w.run(t, w.yaml(c.rules), host.SyncOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, repo := range syncRepos {
				got := layoutTags(t, layoutDir(w.dst, repo))
				var tags []string
				for tag, d := range got {
					tags = append(tags, tag)
					if d != w.f.digest(repo, tag) {
						t.Errorf("%s:%s = %s", repo, tag, d)
					}
				}
				sort.Strings(tags)
				if !reflect.DeepEqual(tags, c.want) {
					t.Fatalf("%s: tags %v, want %v", repo, tags, c.want)
				}
			}
			if rep.Copied != len(c.want)*len(syncRepos) {
				t.Errorf("copied %d, want %d", rep.Copied, len(c.want)*len(syncRepos))
			}
		})
	}
}

func TestSyncLayoutsDryRun(t *testing.T) {
	w := newLayoutWorld(t)
	// Half of the mirror is there already.
	if _, err := w.run(t, w.yaml("    tags: {allow: ['1\\..*']}\n"), host.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	before := snapshotTree(t, w.dst)
	rep, err := w.run(t, w.yaml(""), host.SyncOptions{DryRun: true, Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	if after := snapshotTree(t, w.dst); !reflect.DeepEqual(before, after) {
		t.Fatalf("dry run changed the target")
	}
	var want []string
	for _, repo := range syncRepos {
		for _, tag := range syncTags {
			target := "oci:" + layoutDir(w.dst, repo) + ":" + tag
			if strings.HasPrefix(tag, "1.") {
				want = append(want, "skipped(up-to-date) "+target)
			} else {
				want = append(want, "would-copy "+target)
			}
		}
	}
	sort.Strings(want)
	if got := actions(rep); !reflect.DeepEqual(got, want) {
		t.Fatalf("dry run lists\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range rep.Images {
		if r.Action == host.ActionWouldCopy && r.SourceDigest == "" {
			t.Errorf("%s: dry run must resolve the source digest", r.Target)
		}
	}
	// A target that does not exist at all is not created by a dry run.
	w.dst = filepath.Join(t.TempDir(), "nothing-here")
	rep, err = w.run(t, w.yaml(""), host.SyncOptions{DryRun: true})
	if err != nil || rep.WouldCopy != 30 {
		t.Fatalf("dry run into nothing: %v %+v", err, rep)
	}
	if _, err := os.Stat(w.dst); !os.IsNotExist(err) {
		t.Fatalf("dry run created %s", w.dst)
	}
}

// A dry run fails the images of one platform that the real run refuses
// for --platform (none of those asked for), instead of listing them as to
// copy, and lists those it would copy.
func TestSyncLayoutsDryRunPlatformMismatch(t *testing.T) {
	w := newLayoutWorld(t)
	for _, tc := range []struct {
		platforms string
		want      host.SyncAction
	}{
		{"[linux/arm64]", host.ActionFailed},
		{"[linux/arm64, linux/amd64]", host.ActionWouldCopy},
	} {
		yml := w.yaml("    platforms: " + tc.platforms + "\n")
		for _, dry := range []bool{true, false} {
			rep, _ := w.run(t, yml, host.SyncOptions{DryRun: dry, KeepGoing: true})
			want := tc.want
			if !dry && want == host.ActionWouldCopy {
				want = host.ActionCopied
			}
			for _, r := range rep.Images {
				if r.Action != want {
					t.Fatalf("platforms %s, dry run %v: %s %s (%s), want %s", tc.platforms, dry, r.Target, r.Action, r.Error, want)
				}
			}
		}
	}
}

// snapshotTree maps every file under dir to its size and content digest.
func snapshotTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[p] = digest.FromBytes(b).String()
		return nil
	})
	return out
}

func TestSyncLayoutsFailingImage(t *testing.T) {
	w := newLayoutWorld(t)
	// Break one image at the source: its own layer is gone.
	img := w.f.images["bravo:1.2.0"]
	own := img.Layers[2].Digest
	if err := os.Remove(filepath.Join(layoutDir(w.src, "bravo"), "blobs", "sha256", own.Encoded())); err != nil {
		t.Fatal(err)
	}
	var seen []host.SyncImageResult
	var mu sync.Mutex
	rep, err := w.run(t, w.yaml(""), host.SyncOptions{KeepGoing: true, OnImage: func(r host.SyncImageResult) {
		mu.Lock()
		seen = append(seen, r)
		mu.Unlock()
	}})
	var se *host.SyncError
	if !errors.As(err, &se) || se.Failed != 1 {
		t.Fatalf("want a SyncError for 1 image, got %v", err)
	}
	if !errors.Is(err, core.ErrNotFound) {
		t.Errorf("the error should say the blob is missing: %v", err)
	}
	if rep.Failed != 1 || rep.Copied != 29 {
		t.Fatalf("copied %d failed %d, want 29/1", rep.Copied, rep.Failed)
	}
	if len(seen) != 30 {
		t.Errorf("OnImage called %d times, want 30", len(seen))
	}
	for _, r := range rep.Images {
		if r.Action == host.ActionFailed && (!strings.HasSuffix(r.Target, "/bravo:1.2.0") || !strings.Contains(r.Error, own.String())) {
			t.Errorf("failure %+v", r)
		}
	}
	if _, ok := layoutTags(t, layoutDir(w.dst, "bravo"))["1.2.0"]; ok {
		t.Errorf("the failed image must not be tagged at the target")
	}
	if got := layoutTags(t, layoutDir(w.dst, "bravo"))["1.1.0"]; got != w.f.digest("bravo", "1.1.0") {
		t.Errorf("the rest of the repository must be mirrored")
	}

	// Without --keep-going the run stops; it still fails.
	w.dst = filepath.Join(t.TempDir(), "m2")
	rep, err = w.run(t, w.yaml(""), host.SyncOptions{Parallel: 1})
	if !errors.As(err, &se) || rep.Failed != 1 {
		t.Fatalf("without keep-going: %v, report %v", err, actions(rep))
	}
	if rep.Copied+rep.Failed+rep.Cancelled >= 30 && rep.Copied == 29 {
		t.Errorf("without keep-going the run should stop after the failure: %v", actions(rep))
	}
}

func TestSyncLayoutsImmutableAndPrune(t *testing.T) {
	w := newLayoutWorld(t)
	if _, err := w.run(t, w.yaml(""), host.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	// The source moves 1.0.0 and latest, and drops 1.1.0 and 2.1.0-rc1.
	src, err := layout.Open(layoutDir(w.src, "alpha"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	other := w.f.images["alpha:2.0.0"].Manifest
	for _, tag := range []string{"1.0.0", "latest"} {
		if err := src.Tag(ctx, other, tag); err != nil {
			t.Fatal(err)
		}
	}
	for _, tag := range []string{"1.1.0", "2.1.0-rc1"} {
		if err := src.Untag(ctx, tag); err != nil {
			t.Fatal(err)
		}
	}
	// Versions are immutable: 1.0.0 is not copied again although it moved;
	// latest is. Prune removes 1.1.0 but keeps 2.1.0-rc1, which the deny
	// rule puts outside this entry.
	rules := "    immutable: ['[0-9].*']\n    tags: {deny: ['.*-rc.*']}\n"
	// A dry run counts the prune it would do.
	dry, err := w.run(t, w.yaml(rules), host.SyncOptions{Prune: true, DryRun: true})
	if err != nil || dry.WouldPrune != 1 || dry.Pruned != 0 {
		t.Fatalf("dry run: would prune %d, pruned %d (%v)", dry.WouldPrune, dry.Pruned, err)
	}
	rep, err := w.run(t, w.yaml(rules), host.SyncOptions{Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rep.Images {
		if strings.Contains(r.Target, "/alpha:") {
			got[r.Target[strings.LastIndex(r.Target, ":")+1:]] = string(r.Action) + "/" + r.Reason
		}
	}
	want := map[string]string{
		"1.0.0":  "skipped/immutable",
		"1.1.0":  "pruned/",
		"1.2.0":  "skipped/immutable",
		"2.0.0":  "skipped/immutable",
		"latest": "copied/",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("alpha: %v, want %v", got, want)
	}
	tags := layoutTags(t, layoutDir(w.dst, "alpha"))
	if _, ok := tags["1.1.0"]; ok {
		t.Errorf("1.1.0 not pruned")
	}
	if tags["2.1.0-rc1"] != w.f.digest("alpha", "2.1.0-rc1") {
		t.Errorf("2.1.0-rc1 is outside the filter and must stay")
	}
	if tags["1.0.0"] != w.f.digest("alpha", "1.0.0") || tags["latest"] != other.Digest {
		t.Errorf("immutable 1.0.0 must keep its old digest, latest must move: %v", tags)
	}
	if rep.Pruned != 1 {
		t.Errorf("pruned %d, want 1", rep.Pruned)
	}
}

func TestSyncLayoutsPlatformsAndReferrers(t *testing.T) {
	ctx := context.Background()
	srcDir, dstDir := t.TempDir(), filepath.Join(t.TempDir(), "m")
	s, err := layout.Create(srcDir)
	if err != nil {
		t.Fatal(err)
	}
	raw, idxDesc, imgs, _ := buildIndex(t)
	for _, img := range imgs {
		for d, b := range img.Blobs {
			mustWrite(t, s, ocispec.Descriptor{Digest: d, Size: int64(len(b))}, b)
		}
		mustWrite(t, s, img.Manifest, img.ManifestRaw)
	}
	mustWrite(t, s, idxDesc, raw)
	if err := s.Tag(ctx, idxDesc, "multi"); err != nil {
		t.Fatal(err)
	}
	// A signature-like artifact referring to the index.
	sig := buildReferrer(t, s, idxDesc)
	h := newSyncHost(t)
	runYAML := func(yml string) *host.SyncReport {
		t.Helper()
		res, err := syncspec.Parse([]byte(yml), syncspec.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := h.Sync(ctx, res.Jobs, host.SyncOptions{})
		if err != nil {
			t.Fatalf("%v: %v", err, actions(rep))
		}
		return rep
	}

	// One platform: the arm64 image itself; the second run sees it is up
	// to date although the source tag names the index.
	one := "sync:\n  - {source: 'oci:" + srcDir + ":multi', target: 'oci:" + dstDir + "-arm:multi', platforms: [linux/arm64]}\n"
	for i, want := range []host.SyncAction{host.ActionCopied, host.ActionSkipped} {
		rep := runYAML(one)
		if rep.Images[0].Action != want || rep.Images[0].TargetDigest != imgs[1].Manifest.Digest {
			t.Fatalf("run %d: %+v, want %s of %s", i, rep.Images[0], want, imgs[1].Manifest.Digest)
		}
	}
	if got := layoutTags(t, dstDir+"-arm")["multi"]; got != imgs[1].Manifest.Digest {
		t.Fatalf("target holds %s", got)
	}

	// A platform list some images lack (a mirror of amd64 and arm64 where
	// an image is only one of them): the index of those it has.
	subset := "sync:\n  - {source: 'oci:" + srcDir + ":multi', target: 'oci:" + dstDir + "-sub:multi', platforms: [linux/arm64, windows/arm64]}\n"
	rep := runYAML(subset)
	var subIdx ocispec.Index
	if b, err := os.ReadFile(filepath.Join(dstDir+"-sub", "blobs", "sha256", rep.Images[0].TargetDigest.Encoded())); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &subIdx); err != nil {
		t.Fatal(err)
	}
	if len(subIdx.Manifests) != 1 || subIdx.Manifests[0].Digest != imgs[1].Manifest.Digest {
		t.Fatalf("subset sync wrote %+v, want an index of %s alone", subIdx.Manifests, imgs[1].Manifest.Digest)
	}

	// Whole index with referrers.
	whole := "sync:\n  - {source: 'oci:" + srcDir + "', target: 'oci:" + dstDir + "', referrers: true}\n"
	rep = runYAML(whole)
	if rep.Copied != 1 || rep.Referrers != 1 || rep.Images[0].TargetDigest != idxDesc.Digest {
		t.Fatalf("first: %+v", rep)
	}
	if got := layoutTags(t, dstDir)["multi"]; got != idxDesc.Digest {
		t.Fatalf("index digest %s, want %s", got, idxDesc.Digest)
	}
	dst, err := layout.Open(dstDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Resolve(ctx, sig.String()); err != nil {
		t.Fatalf("referrer %s not at the target: %v", sig, err)
	}
	rep = runYAML(whole)
	if rep.Skipped != 1 || rep.Referrers != 0 || rep.Manifests != 0 {
		t.Fatalf("second: %+v", rep)
	}
}

// buildReferrer stores an artifact manifest whose subject is subject and
// returns its digest (writeReferrer, with one payload).
func buildReferrer(t *testing.T, s *layout.Store, subject ocispec.Descriptor) digest.Digest {
	t.Helper()
	return writeReferrer(t, s, subject, "signature").Digest
}
