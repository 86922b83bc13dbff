package host_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/host/syncspec"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
)

// registryWorld is the fixture pushed to a source registry, mirrored to a
// second one. Both speak TLS with a test CA, so the docker transport needs
// no plain-HTTP probe and every request counted is one the sync made.
type registryWorld struct {
	f        *syncFixture
	src, dst *registrytest.Registry
	h        *host.Host
}

func newRegistryWorld(t *testing.T) *registryWorld {
	w := &registryWorld{
		f:   newSyncFixture(t),
		src: registrytest.Start(t, registrytest.Options{TLS: true, HTTP2: true}),
		dst: registrytest.Start(t, registrytest.Options{TLS: true, HTTP2: true}),
		h:   newSyncHost(t),
	}
	w.f.push(t, w.src, "")
	w.src.ResetStats()
	return w
}

// yaml mirrors every repository under prefix at the destination, with
// extra settings for the entry.
func (w *registryWorld) yaml(prefix, extra string) string {
	return fmt.Sprintf(`defaults:
  source-cert-dir: %s
  target-cert-dir: %s
sync:
  - type: registry-prefix
    source: %s
    target: %s/%s
    repositories: [%s]
%s`, w.src.CertDir, w.dst.CertDir, w.src.Addr, w.dst.Addr, prefix, strings.Join(syncRepos, ", "), extra)
}

func (w *registryWorld) run(t *testing.T, yml string, opts host.SyncOptions) (*host.SyncReport, error) {
	t.Helper()
	res, err := syncspec.Parse([]byte(yml), syncspec.Options{})
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, yml)
	}
	w.src.ResetStats()
	w.dst.ResetStats()
	rep, err := w.h.Sync(context.Background(), res.Jobs, opts)
	if rep == nil {
		t.Fatalf("no report: %v", err)
	}
	return rep, err
}

// registryTags reads repository's tag -> digest map straight from the
// registry (bypassing the proxy, so the requests are not counted).
func registryTags(t *testing.T, r *registrytest.Registry, repository string) map[string]digest.Digest {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.CAPool()}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + r.BackendAddr + "/v2/" + repository + "/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]digest.Digest{}
	if resp.StatusCode == http.StatusNotFound {
		return out
	}
	var list struct{ Tags []string }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	for _, tag := range list.Tags {
		raw, _, err := r.GetManifest(repository, tag)
		if err != nil {
			t.Fatal(err)
		}
		out[tag] = digest.FromBytes(raw)
	}
	return out
}

// requestKinds counts requests as "METHOD kind" (kind: manifests, blobs,
// uploads, tags).
func requestKinds(reqs []registrytest.Request) map[string]int {
	out := map[string]int{}
	for _, r := range reqs {
		kind := "other"
		switch {
		case r.IsBlobUpload():
			kind = "uploads"
		case strings.Contains(r.Path, "/blobs/"):
			kind = "blobs"
		case strings.Contains(r.Path, "/manifests/"):
			kind = "manifests"
		case strings.HasSuffix(r.Path, "/tags/list"):
			kind = "tags"
		}
		out[r.Method+" "+kind]++
	}
	return out
}

func TestSyncRegistries(t *testing.T) {
	w := newRegistryWorld(t)

	t.Run("first-then-nothing", func(t *testing.T) {
		yml := w.yaml("m1", "")
		start := time.Now()
		rep, err := w.run(t, yml, host.SyncOptions{})
		if err != nil {
			t.Fatalf("first sync: %v", err)
		}
		first := time.Since(start)
		if rep.Copied != 30 || rep.Failed != 0 {
			t.Fatalf("first sync: %v", actions(rep))
		}
		for _, repo := range syncRepos {
			got := registryTags(t, w.dst, "m1/"+repo)
			if len(got) != len(syncTags) {
				t.Errorf("m1/%s has %d tags", repo, len(got))
			}
			for _, tag := range syncTags {
				if got[tag] != w.f.digest(repo, tag) {
					t.Errorf("m1/%s:%s = %s, want %s", repo, tag, got[tag], w.f.digest(repo, tag))
				}
			}
		}
		// Every distinct blob left the source once; the base layer was
		// uploaded once and mounted into the 4 other repositories.
		gets := map[string]int{}
		for _, r := range w.src.Requests() {
			if r.IsBlobGet() {
				gets[r.Path[strings.LastIndex(r.Path, "/")+1:]]++
			}
		}
		for d, n := range gets {
			if n > 1 {
				t.Errorf("blob %s pulled %d times from the source", d, n)
			}
		}
		if len(gets) != len(w.f.blobs) {
			t.Errorf("%d distinct blobs pulled, want %d", len(gets), len(w.f.blobs))
		}
		var total int64
		for _, n := range w.f.blobs {
			total += n
		}
		st := w.dst.Stats()
		if st.MountsCreated != len(syncRepos)-1 || st.BlobUploadBytes != total {
			t.Errorf("destination: %d mounts created (want %d), %d bytes uploaded (want %d)", st.MountsCreated, len(syncRepos)-1, st.BlobUploadBytes, total)
		}
		if rep.BytesSent != total || rep.BlobsMounted != len(syncRepos)-1 {
			t.Errorf("report: %d bytes sent, %d mounted; want %d, %d", rep.BytesSent, rep.BlobsMounted, total, len(syncRepos)-1)
		}
		t.Logf("first sync: %s, %d requests at the source, %d at the destination", first.Round(time.Millisecond), len(w.src.Requests()), len(w.dst.Requests()))

		// A fresh host (no pooled connection) for the second sync: its
		// checks, 16 in flight, share one HTTP/2 connection per registry
		// instead of each handshaking its own.
		w.h = newSyncHost(t)
		srcConns, dstConns := w.src.Connections(), w.dst.Connections()
		start = time.Now()
		rep, err = w.run(t, yml, host.SyncOptions{})
		if err != nil {
			t.Fatalf("second sync: %v", err)
		}
		if n, m := w.src.Connections()-srcConns, w.dst.Connections()-dstConns; n != 1 || m != 1 {
			t.Errorf("second sync opened %d connections to the source, %d to the destination; want 1 each", n, m)
		}
		if rep.Copied != 0 || rep.Skipped != 30 || rep.BytesSent != 0 || rep.Manifests != 0 {
			t.Fatalf("second sync: %+v", rep)
		}
		// One HEAD per tag and side, one tag list per source repository:
		// no GET of a manifest or blob, nothing written.
		wantSrc := map[string]int{"GET tags": 5, "HEAD manifests": 30}
		wantDst := map[string]int{"HEAD manifests": 30}
		if got := requestKinds(w.src.Requests()); !reflect.DeepEqual(got, wantSrc) {
			t.Errorf("second sync, source requests %v, want %v", got, wantSrc)
		}
		if got := requestKinds(w.dst.Requests()); !reflect.DeepEqual(got, wantDst) {
			t.Errorf("second sync, destination requests %v, want %v", got, wantDst)
		}
		t.Logf("second sync: %s, %d requests", time.Since(start).Round(time.Millisecond), len(w.src.Requests())+len(w.dst.Requests()))

		// Declared immutable, an unchanged run lists tags and nothing else.
		rep, err = w.run(t, w.yaml("m1", "    immutable: ['.*']\n"), host.SyncOptions{})
		if err != nil || rep.Skipped != 30 {
			t.Fatalf("immutable: %v %v", err, actions(rep))
		}
		n := len(w.src.Requests()) + len(w.dst.Requests())
		if got := requestKinds(append(w.src.Requests(), w.dst.Requests()...)); n != 10 || got["GET tags"] != 10 {
			t.Errorf("immutable unchanged run: %d requests %v, want 10 tag lists", n, got)
		}
	})

	t.Run("catalog", func(t *testing.T) {
		// registry-prefix without repositories: the source registry's
		// catalog names them (one GET /v2/_catalog), each goes under the
		// target prefix with its path.
		yml := fmt.Sprintf("defaults: {source-cert-dir: %s, target-cert-dir: %s}\nsync:\n  - {type: registry-prefix, source: '%s', target: '%s/cat', tags: {allow: ['1\\..*']}}\n",
			w.src.CertDir, w.dst.CertDir, w.src.Addr, w.dst.Addr)
		// A repository the catalog lists that holds no tag (distribution
		// answers its tag list NAME_UNKNOWN) has nothing to copy, no error.
		if err := w.src.Push("untagged", "", w.f.images["alpha:1.0.0"]); err != nil {
			t.Fatal(err)
		}
		rep, err := w.run(t, yml, host.SyncOptions{})
		if err != nil || rep.Copied != 15 || rep.Failed != 0 {
			t.Fatalf("catalog sync: %v %v", err, actions(rep))
		}
		for _, repo := range syncRepos {
			if got := registryTags(t, w.dst, "cat/"+repo); len(got) != 3 || got["1.0.0"] != w.f.digest(repo, "1.0.0") {
				t.Errorf("cat/%s: %v", repo, got)
			}
		}
		if got := requestKinds(w.src.Requests())["GET other"]; got != 1 {
			t.Errorf("%d catalog requests, want 1", got)
		}

		// A catalog the registry refuses fails the entry, and prune, with
		// nothing listed, deletes nothing.
		w.src.AddFault(registrytest.Fault{Kind: registrytest.Respond, Status: http.StatusNotFound,
			Body: `{"errors":[{"code":"UNSUPPORTED","message":"catalog disabled"}]}`, Match: registrytest.MatchMethodPath(http.MethodGet, "/v2/_catalog")})
		defer w.src.ClearFaults()
		rep, err = w.run(t, yml, host.SyncOptions{Prune: true, KeepGoing: true})
		var se *host.SyncError
		if !errors.As(err, &se) || se.Failed != 1 || len(rep.Images) != 1 || rep.Pruned != 0 {
			t.Fatalf("refused catalog: %v %v", err, actions(rep))
		}
		if r := rep.Images[0]; r.Reason != "list source repositories" || !strings.Contains(r.Error, "list repositories (GET /v2/_catalog)") || r.Source != "docker://"+w.src.Addr {
			t.Errorf("refused catalog record: %+v", r)
		}
		if got := registryTags(t, w.dst, "cat/alpha"); len(got) != 3 {
			t.Errorf("cat/alpha after a refused catalog: %v", got)
		}
	})

	t.Run("prefix-into-itself", func(t *testing.T) {
		// A target inside the source prefix: the repositories the first
		// run makes are listed by the second's catalog and must not be
		// mirrored again (self/self/alpha, then self/self/self/alpha...).
		yml := fmt.Sprintf("defaults: {source-cert-dir: %[1]s, target-cert-dir: %[1]s}\nsync:\n  - {type: registry-prefix, source: '%[2]s', target: '%[2]s/self', tags: {allow: [latest]}}\n", w.src.CertDir, w.src.Addr)
		for round := 1; round <= 2; round++ {
			rep, err := w.run(t, yml, host.SyncOptions{})
			if err != nil || rep.Failed != 0 || (round == 2 && rep.Copied != 0) {
				t.Fatalf("round %d: %v %v", round, err, actions(rep))
			}
		}
		for _, repo := range syncRepos {
			if got := registryTags(t, w.src, "self/self/"+repo); len(got) != 0 {
				t.Errorf("self/self/%s was made: %v", repo, got)
			}
			if got := registryTags(t, w.src, "self/"+repo); got["latest"] != w.f.digest(repo, "latest") {
				t.Errorf("self/%s: %v", repo, got)
			}
		}
	})

	t.Run("air-gap", func(t *testing.T) {
		// The air-gapped round trip, by prefix both ways: every repository
		// of the source registry into a tree of layouts (a disk to carry
		// over), then the tree into the other registry; digests kept.
		media := t.TempDir() + "/media"
		out := fmt.Sprintf("sync:\n  - {type: registry-prefix, source: '%s', target: 'oci:%s/', source-cert-dir: %s, tags: {allow: [latest]}}\n", w.src.Addr, media, w.src.CertDir)
		rep, err := w.run(t, out, host.SyncOptions{})
		if err != nil || rep.Copied < len(syncRepos) {
			t.Fatalf("registry to layouts: %v %v", err, actions(rep))
		}
		in := fmt.Sprintf("sync:\n  - {type: registry-prefix, source: 'oci:%s/', target: '%s/airgap', target-cert-dir: %s}\n", media, w.dst.Addr, w.dst.CertDir)
		rep, err = w.run(t, in, host.SyncOptions{})
		if err != nil || rep.Copied < len(syncRepos) {
			t.Fatalf("layouts to registry: %v %v", err, actions(rep))
		}
		for _, repo := range syncRepos {
			if got := registryTags(t, w.dst, "airgap/"+repo); len(got) != 1 || got["latest"] != w.f.digest(repo, "latest") {
				t.Errorf("airgap/%s: %v, want latest = %s", repo, got, w.f.digest(repo, "latest"))
			}
		}
		// Unchanged, the second crossing writes nothing.
		rep, err = w.run(t, in, host.SyncOptions{})
		if err != nil || rep.Copied != 0 || rep.Skipped < len(syncRepos) {
			t.Fatalf("second crossing: %v %v", err, actions(rep))
		}
	})

	t.Run("dry-run", func(t *testing.T) {
		// Half mirrored first.
		if _, err := w.run(t, w.yaml("m2", "    tags: {semver: '<2'}\n"), host.SyncOptions{}); err != nil {
			t.Fatal(err)
		}
		rep, err := w.run(t, w.yaml("m2", ""), host.SyncOptions{DryRun: true, Prune: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range w.dst.Requests() {
			if r.Method != http.MethodHead && r.Method != http.MethodGet {
				t.Errorf("dry run sent %s %s", r.Method, r.Path)
			}
			if r.IsBlobGet() || (r.Method == http.MethodGet && strings.Contains(r.Path, "/manifests/")) {
				t.Errorf("dry run fetched %s", r.Path)
			}
		}
		if rep.WouldCopy != 15 || rep.Skipped != 15 {
			t.Fatalf("dry run: %v", actions(rep))
		}
		for _, r := range rep.Images {
			tag := r.Target[strings.LastIndex(r.Target, ":")+1:]
			want := host.ActionWouldCopy
			if strings.HasPrefix(tag, "1.") {
				want = host.ActionSkipped
			}
			if r.Action != want {
				t.Errorf("%s: %s, want %s", r.Target, r.Action, want)
			}
		}
		for _, repo := range syncRepos {
			if got := registryTags(t, w.dst, "m2/"+repo); len(got) != 3 {
				t.Errorf("dry run changed m2/%s: %v", repo, got)
			}
		}
	})

	t.Run("failing-image", func(t *testing.T) {
		bad := w.f.images["delta:2.0.0"].Layers[2].Digest
		w.src.AddFault(registrytest.Fault{Kind: registrytest.Respond, Status: http.StatusNotFound,
			Body: `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}`, Match: registrytest.MatchBlobGet(bad)})
		defer w.src.ClearFaults()
		rep, err := w.run(t, w.yaml("m3", ""), host.SyncOptions{KeepGoing: true})
		var se *host.SyncError
		if !errors.As(err, &se) || se.Failed != 1 || !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("want 1 failed image (not found), got %v", err)
		}
		if rep.Copied != 29 {
			t.Fatalf("the rest must be mirrored: %v", actions(rep))
		}
		got := registryTags(t, w.dst, "m3/delta")
		if _, ok := got["2.0.0"]; ok || len(got) != 5 {
			t.Errorf("m3/delta: %v", got)
		}
	})

	t.Run("429", func(t *testing.T) {
		// The source rate-limits the first manifest requests; the
		// transport waits (Retry-After) and the sync completes.
		w.src.AddFault(registrytest.Fault{Kind: registrytest.Respond, Status: http.StatusTooManyRequests,
			Header: http.Header{"Retry-After": {"0"}}, Match: registrytest.MatchManifest("", ""), Times: 3})
		defer w.src.ClearFaults()
		rep, err := w.run(t, w.yaml("m4", "    tags: {allow: [latest]}\n"), host.SyncOptions{})
		if err != nil || rep.Copied != 5 {
			t.Fatalf("%v %v", err, actions(rep))
		}
		n := 0
		for _, r := range w.src.Requests() {
			if r.Status == http.StatusTooManyRequests {
				n++
			}
		}
		if n != 3 {
			t.Errorf("%d answers 429, want 3", n)
		}
	})

	t.Run("rate-limit", func(t *testing.T) {
		// 35 operations at the source (5 tag lists, 30 HEADs) at 40 per
		// second with no burst take at least 0.8 s.
		yml := w.yaml("m1", "")
		start := time.Now()
		rep, err := w.run(t, yml, host.SyncOptions{DefaultLimit: host.RegistryLimit{RequestsPerSecond: 40, Burst: 1, MaxConcurrent: 2}})
		if err != nil || rep.Skipped != 30 {
			t.Fatalf("%v %v", err, actions(rep))
		}
		if d := time.Since(start); d < 800*time.Millisecond {
			t.Errorf("35 requests at 40/s took %s", d)
		}
	})

	t.Run("referrers", func(t *testing.T) {
		// An image and a signature in a layout go to the source registry,
		// then from registry to registry, referrers along each time.
		dir := t.TempDir()
		s, err := layout.Create(dir)
		if err != nil {
			t.Fatal(err)
		}
		img := w.f.images["echo:1.0.0"]
		for d, b := range img.Blobs {
			mustWrite(t, s, ocispec.Descriptor{Digest: d, Size: int64(len(b))}, b)
		}
		mustWrite(t, s, img.Manifest, img.ManifestRaw)
		if err := s.Tag(context.Background(), img.Manifest, "v1"); err != nil {
			t.Fatal(err)
		}
		sig := buildReferrer(t, s, img.Manifest)
		indexTag := "sha256-" + img.Manifest.Digest.Encoded()

		up := fmt.Sprintf("sync:\n  - {source: 'oci:%s', target: '%s/signed', referrers: true, target-cert-dir: %s}\n", dir, w.src.Addr, w.src.CertDir)
		rep, err := w.run(t, up, host.SyncOptions{})
		if err != nil || rep.Copied != 1 || rep.Referrers != 1 {
			t.Fatalf("layout to registry: %v %+v", err, rep)
		}
		if tags := registryTags(t, w.src, "signed"); tags["v1"] != img.Manifest.Digest || tags[indexTag] == "" {
			t.Fatalf("source registry tags %v: want v1 and the referrers tag %s", tags, indexTag)
		}
		across := fmt.Sprintf("defaults: {source-cert-dir: %s, target-cert-dir: %s, referrers: true}\nsync:\n  - {source: %s/signed, target: %s/signed}\n",
			w.src.CertDir, w.dst.CertDir, w.src.Addr, w.dst.Addr)
		rep, err = w.run(t, across, host.SyncOptions{})
		if err != nil || rep.Copied != 1 || rep.Referrers != 1 || len(rep.Images) != 1 {
			t.Fatalf("registry to registry: %v %v", err, actions(rep))
		}
		if _, _, err := w.dst.GetManifest("signed", sig.String()); err != nil {
			t.Fatalf("signature %s not at the destination: %v", sig, err)
		}
		if tags := registryTags(t, w.dst, "signed"); tags["v1"] != img.Manifest.Digest || tags[indexTag] == "" {
			t.Fatalf("destination tags %v", tags)
		}
		rep, err = w.run(t, across, host.SyncOptions{Prune: true})
		if err != nil || rep.Skipped != 1 || rep.Referrers != 0 || rep.Pruned != 0 {
			t.Fatalf("second run: %v %v", err, actions(rep))
		}
		for _, r := range w.dst.Requests() {
			if r.Method != http.MethodHead && r.Method != http.MethodGet {
				t.Errorf("second run wrote: %s %s", r.Method, r.Path)
			}
		}
	})

	t.Run("unknown-repositories", func(t *testing.T) {
		// A target repository that does not exist yet has no tags: with
		// immutable tags (which list the target) everything is copied.
		entry := func(src, dst, extra string) string {
			return fmt.Sprintf("  - {source: %s/%s, target: %s/%s%s}\n", w.src.Addr, src, w.dst.Addr, dst, extra)
		}
		head := fmt.Sprintf("defaults: {source-cert-dir: %s, target-cert-dir: %s}\nsync:\n", w.src.CertDir, w.dst.CertDir)
		rep, err := w.run(t, head+entry("alpha", "m6/alpha", ", immutable: ['.*']"), host.SyncOptions{})
		if err != nil || rep.Copied != len(syncTags) {
			t.Fatalf("to a new repository: %v %v", err, actions(rep))
		}
		// A source repository the registry does not know fails its entry
		// (skopeo, crane and regsync fail too), and prune, which would
		// otherwise read it as empty, deletes nothing at the target.
		rep, err = w.run(t, head+entry("nope", "m6/alpha", "")+entry("bravo", "m6/bravo", ""), host.SyncOptions{Prune: true, KeepGoing: true})
		var se *host.SyncError
		if !errors.As(err, &se) || se.Failed != 1 || !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("want the unknown source to fail (not found), got %v %v", err, actions(rep))
		}
		if rep.Copied != len(syncTags) || rep.Pruned != 0 {
			t.Fatalf("the other entry must be mirrored and nothing pruned: %v", actions(rep))
		}
		var failed *host.SyncImageResult
		for i := range rep.Images {
			if rep.Images[i].Action == host.ActionFailed {
				failed = &rep.Images[i]
			}
		}
		if failed == nil || !strings.Contains(failed.Error, "repository nope") || !strings.Contains(failed.Error, "does not know the repository") {
			t.Errorf("failure does not name the unknown repository: %+v", failed)
		}
		// The step is said once ("list tags of R: registry ..., repository
		// nope: list tags: ..." before).
		if failed != nil && strings.Count(failed.Error, "list tags") != 1 {
			t.Errorf("failure names the step %d times: %s", strings.Count(failed.Error, "list tags"), failed.Error)
		}
		if got := registryTags(t, w.dst, "m6/alpha"); len(got) != len(syncTags) {
			t.Errorf("m6/alpha has %d tags after the failed prune, want %d", len(got), len(syncTags))
		}
	})

	t.Run("skopeo-yaml", func(t *testing.T) {
		skopeoYAML := fmt.Sprintf(`%s:
  images:
    alpha: []
    bravo: ["1.0.0", "latest", "%s"]
  images-by-tag-regex:
    charlie: '^1\.[12]'
    echo: 'rc'
  images-by-semver:
    delta: '>=1.1 <2'
  tls-verify: true
  cert-dir: %s
`, w.src.Addr, w.f.digest("bravo", "2.0.0"), w.src.CertDir)
		oursYAML := fmt.Sprintf(`defaults: {source-cert-dir: %[1]s, target-cert-dir: %[2]s}
sync:
  - {source: %[3]s/alpha, target: %[4]s/ours/alpha}
  - {source: %[3]s/bravo:1.0.0, target: %[4]s/ours/bravo}
  - {source: %[3]s/bravo:latest, target: %[4]s/ours/bravo}
  - {source: '%[3]s/bravo@%[5]s', target: %[4]s/ours/bravo}
  - {source: %[3]s/charlie, target: %[4]s/ours/charlie, tags: {allow: ['1\.[12].*']}}
  - {source: %[3]s/echo, target: %[4]s/ours/echo, tags: {allow: ['.*rc.*']}}
  - {source: %[3]s/delta, target: %[4]s/ours/delta, tags: {semver: '>=1.1 <2'}}
`, w.src.CertDir, w.dst.CertDir, w.src.Addr, w.dst.Addr, w.f.digest("bravo", "2.0.0"))

		res, err := syncspec.Parse([]byte(skopeoYAML), syncspec.Options{Target: w.dst.Addr + "/skopeo-format", DstOptions: map[string]string{"cert-dir": w.dst.CertDir}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Format != syncspec.FormatSkopeo {
			t.Fatalf("format %s", res.Format)
		}
		if _, err := w.h.Sync(context.Background(), res.Jobs, host.SyncOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := w.run(t, oursYAML, host.SyncOptions{}); err != nil {
			t.Fatal(err)
		}
		// Three entries write ours/bravo: each blob is mounted into it once
		// (concurrent mounts of one blob into one repository made
		// docker-registry fail a manifest PUT now and then).
		mounts := map[string]int{}
		for _, r := range w.dst.Requests() {
			if q, err := url.ParseQuery(r.RawQuery); err == nil && q.Get("mount") != "" && strings.HasPrefix(r.Path, "/v2/ours/bravo/") {
				mounts[q.Get("mount")]++
			}
		}
		for d, n := range mounts {
			if n > 1 {
				t.Errorf("blob %s mounted %d times into ours/bravo", d, n)
			}
		}
		want := map[string][]string{
			"alpha":   syncTags,
			"bravo":   {"1.0.0", "latest"},
			"charlie": {"1.1.0", "1.2.0"},
			"delta":   {"1.1.0", "1.2.0"},
			"echo":    {"2.1.0-rc1"},
		}
		state := func(prefix string) map[string]map[string]digest.Digest {
			out := map[string]map[string]digest.Digest{}
			for _, repo := range syncRepos {
				out[repo] = registryTags(t, w.dst, prefix+"/"+repo)
			}
			return out
		}
		ours := state("ours")
		for repo, tags := range want {
			var got []string
			for tag, d := range ours[repo] {
				got = append(got, tag)
				if d != w.f.digest(repo, tag) {
					t.Errorf("ours/%s:%s = %s", repo, tag, d)
				}
			}
			sort.Strings(got)
			if !reflect.DeepEqual(got, tags) {
				t.Errorf("ours/%s: %v, want %v", repo, got, tags)
			}
		}
		if sk := state("skopeo-format"); !reflect.DeepEqual(sk, ours) {
			t.Errorf("skopeo's YAML gave\n%v\nours\n%v", sk, ours)
		}
		// The untagged digest entry arrived in both.
		for _, prefix := range []string{"ours", "skopeo-format"} {
			if _, _, err := w.dst.GetManifest(prefix+"/bravo", w.f.digest("bravo", "2.0.0").String()); err != nil {
				t.Errorf("%s/bravo@digest: %v", prefix, err)
			}
		}

		// And skopeo itself reads the file the same way.
		skopeo, err := exec.LookPath("skopeo")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("skopeo is required in CI: %v", err)
			}
			t.Skip("skopeo not installed; skipping the comparison with skopeo sync")
		}
		// Debian's skopeo 1.9.3 predates images-by-semver (it ignores the
		// key): leave it out of skopeo's run and of the comparison.
		file := filepath.Join(t.TempDir(), "skopeo.yaml")
		noSemver := strings.Replace(skopeoYAML, "  images-by-semver:\n    delta: '>=1.1 <2'\n", "", 1)
		if noSemver == skopeoYAML {
			t.Fatal("fixture YAML changed: update the semver removal")
		}
		if err := os.WriteFile(file, []byte(noSemver), 0o600); err != nil {
			t.Fatal(err)
		}
		// --preserve-digests: skopeo would otherwise compress the
		// fixture's uncompressed layers on the way to a registry.
		cmd := exec.Command(skopeo, "--insecure-policy", "sync", "--all", "--preserve-digests", "--src", "yaml", "--dest", "docker",
			"--dest-cert-dir", w.dst.CertDir, file, w.dst.Addr+"/by-skopeo")
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("skopeo sync: %v\n%s", err, out)
		}
		bySkopeo := state("by-skopeo")
		delete(bySkopeo, "delta")
		delete(ours, "delta")
		if !reflect.DeepEqual(bySkopeo, ours) {
			t.Errorf("skopeo sync mirrored\n%v\nstevedore\n%v", bySkopeo, ours)
		}
	})
}

// A dry run whose target refuses its credentials does not know what the
// target holds: it fails the images rather than list them as to copy (a
// real run would fail them at the copy), and exits non-zero.
func TestSyncDryRunTargetRefusesCredentials(t *testing.T) {
	f := newSyncFixture(t)
	src := registrytest.Start(t, registrytest.Options{TLS: true})
	dst := registrytest.Start(t, registrytest.Options{TLS: true, Auth: registrytest.AuthBasic})
	f.push(t, src, "")
	if err := dst.Push("m/alpha", "1.0.0", f.images["alpha:1.0.0"]); err != nil {
		t.Fatal(err)
	}
	h := newSyncHost(t)
	for _, extra := range []string{"", "    immutable: ['.*']\n"} {
		yml := fmt.Sprintf(`sync:
  - source: %s/alpha
    target: %s/m/alpha
    source-cert-dir: %s
    target-cert-dir: %s
    target-creds: '%s:wrong-password'
%s`, src.Addr, dst.Addr, src.CertDir, dst.CertDir, dst.Username, extra)
		res, err := syncspec.Parse([]byte(yml), syncspec.Options{})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := h.Sync(context.Background(), res.Jobs, host.SyncOptions{DryRun: true, KeepGoing: true})
		if rep == nil {
			t.Fatalf("no report: %v", err)
		}
		if err == nil || rep.WouldCopy != 0 || rep.Failed == 0 {
			t.Fatalf("immutable=%v: err %v, %d would copy, %d failed: %v", extra != "", err, rep.WouldCopy, rep.Failed, actions(rep))
		}
		if strings.Contains(err.Error(), "wrong-password") || !strings.Contains(err.Error(), "401") {
			t.Fatalf("error: %v", err)
		}
	}
}
