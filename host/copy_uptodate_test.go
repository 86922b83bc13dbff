package host_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
)

// A copy to a tag the destination registry already holds with the same
// digest makes one request there (HEAD of the manifest) and writes nothing;
// --force (CopyOptions.Force) checks and skips blob by blob and rewrites the
// manifest; another tag checks every blob and moves none.
func TestCopyUpToDateRegistry(t *testing.T) {
	ctx := context.Background()
	f := newSyncFixture(t)
	repo := syncRepos[0]
	src := filepath.Join(t.TempDir(), "src")
	f.writeLayout(t, src, repo)
	tag := syncTags[0]
	img := f.images[repo+":"+tag]
	blobs := len(img.Blobs)

	reg := registrytest.Start(t, registrytest.Options{TLS: true})
	h := newSyncHost(t)
	opts := host.CopyOptions{DstOptions: map[string]string{"cert-dir": reg.CertDir}}
	dst := "docker://" + reg.Ref("mirror") + ":" + tag
	res, err := h.Copy(ctx, "oci:"+src+":"+tag, dst, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.UpToDate || res.BlobsCopied != blobs {
		t.Fatalf("first copy: %+v, want %d blobs copied", res, blobs)
	}

	requests := func() string {
		var out []string
		for _, r := range reg.Requests() {
			out = append(out, fmt.Sprintf("%s %s", r.Method, r.Path))
		}
		return strings.Join(out, "; ")
	}
	reg.ResetStats()
	res, err = h.Copy(ctx, "oci:"+src+":"+tag, dst, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !res.UpToDate || res.BlobsCopied+res.BlobsSkipped+res.Manifests != 0 || res.Descriptor.Digest != img.Manifest.Digest {
		t.Fatalf("second copy: %+v, want up to date with %s", res, img.Manifest.Digest)
	}
	if got := requests(); got != "HEAD /v2/mirror/manifests/"+tag {
		t.Fatalf("second copy made %q, want one manifest HEAD", got)
	}

	// From the registry itself, to another repository holding the image:
	// a HEAD on each side, the manifest is not fetched.
	both := host.CopyOptions{SrcOptions: opts.DstOptions, DstOptions: opts.DstOptions}
	if _, err := h.Copy(ctx, dst, "docker://"+reg.Ref("again")+":"+tag, both); err != nil {
		t.Fatal(err)
	}
	reg.ResetStats()
	res, err = h.Copy(ctx, dst, "docker://"+reg.Ref("again")+":"+tag, both)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(requests(), "; ")
	slices.Sort(got)
	if want := []string{"HEAD /v2/again/manifests/" + tag, "HEAD /v2/mirror/manifests/" + tag}; !res.UpToDate || !slices.Equal(got, want) {
		t.Fatalf("registry copy to a repository holding the image: up to date %v, requests %q, want %q", res.UpToDate, got, want)
	}

	// Forced, nothing to compare: the source's manifest comes with its
	// resolve, one GET by tag, no HEAD first.
	reg.ResetStats()
	forcedBoth := both
	forcedBoth.Force = true
	if _, err := h.Copy(ctx, dst, "docker://"+reg.Ref("again")+":"+tag, forcedBoth); err != nil {
		t.Fatal(err)
	}
	var srcReads []string
	for _, r := range reg.Requests() {
		if strings.HasPrefix(r.Path, "/v2/mirror/manifests/") {
			srcReads = append(srcReads, r.Method+" "+r.Path)
		}
	}
	if want := []string{"GET /v2/mirror/manifests/" + tag}; !slices.Equal(srcReads, want) {
		t.Fatalf("forced copy read the source's manifest with %q, want %q", srcReads, want)
	}

	reg.ResetStats()
	forced := opts
	forced.Force = true
	res, err = h.Copy(ctx, "oci:"+src+":"+tag, dst, forced)
	if err != nil {
		t.Fatal(err)
	}
	if res.UpToDate || res.BlobsSkipped != blobs || res.BlobsCopied != 0 || res.Manifests != 1 {
		t.Fatalf("forced copy: %+v, want %d blobs skipped and the manifest written", res, blobs)
	}
	if st := reg.Stats(); st.BlobUploadBytes != 0 || st.Uploads != 0 {
		t.Fatalf("forced copy uploaded %d bytes: %s", st.BlobUploadBytes, requests())
	}

	// Another tag: the manifest is not there under it, blobs are.
	res, err = h.Copy(ctx, "oci:"+src+":"+tag, "docker://"+reg.Ref("mirror")+":other", opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.UpToDate || res.BlobsSkipped != blobs || res.Manifests != 1 {
		t.Fatalf("copy to another tag: %+v", res)
	}
}

// The same holds for a local layout: the second copy to the tag writes
// nothing, a copy of another image to that tag moves it.
func TestCopyUpToDateLayout(t *testing.T) {
	ctx := context.Background()
	f := newSyncFixture(t)
	repo := syncRepos[0]
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	f.writeLayout(t, src, repo)
	h := newSyncHost(t)
	dst := "oci:" + filepath.Join(dir, "dst") + ":v"
	for i, want := range []bool{false, true} {
		res, err := h.Copy(ctx, "oci:"+src+":"+syncTags[0], dst, host.CopyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.UpToDate != want {
			t.Fatalf("copy %d: UpToDate %v, want %v (%+v)", i+1, res.UpToDate, want, res)
		}
	}
	res, err := h.Copy(ctx, "oci:"+src+":"+syncTags[1], dst, host.CopyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.UpToDate || res.Manifests != 1 || res.Descriptor.Digest != f.digest(repo, syncTags[1]) {
		t.Fatalf("copy of another image to the tag: %+v", res)
	}
	if got := layoutTags(t, filepath.Join(dir, "dst"))["v"]; got != f.digest(repo, syncTags[1]) {
		t.Fatalf("tag v points at %s, want %s", got, f.digest(repo, syncTags[1]))
	}
}

// A copy whose source cannot be opened leaves the destination untouched:
// it is opened (and a layout created) only once the source is known good.
func TestCopyBadSourceCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	h := newSyncHost(t)
	dst := filepath.Join(dir, "dst")
	if _, err := h.Copy(context.Background(), "oci:"+filepath.Join(dir, "missing")+":v1", "oci:"+dst+":v1", host.CopyOptions{}); err == nil {
		t.Fatal("copy from a missing layout succeeded")
	}
	if _, err := os.Stat(dst); !os.IsNotExist(err) {
		t.Fatalf("destination created by a failed copy: %v", err)
	}
}
