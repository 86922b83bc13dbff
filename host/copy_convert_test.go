package host_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/core/ref"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/plugins/docker/registry"
)

// refuseManifests makes r answer every manifest PUT of media type mt as a
// registry that does not take that type does: zot (415 with a
// MANIFEST_INVALID body) for Docker schema 2, OpenShift without schema 2
// (400 MANIFEST_INVALID) for OCI.
func refuseManifests(r *registrytest.Registry, mt string, status int) {
	r.AddFault(registrytest.Fault{
		Kind: registrytest.Respond,
		Match: func(req *http.Request) bool {
			return req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/manifests/") && req.Header.Get("Content-Type") == mt
		},
		Status: status,
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   `{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":{"mediaType":"` + mt + `"}}]}`,
		Drain:  true,
	})
}

// bothFormats returns a seeded (OCI) image's manifest and its Docker
// schema 2 conversion.
func bothFormats(t *testing.T, img *registrytest.Image) (oci, docker *manifest.Manifest) {
	t.Helper()
	oci, err := manifest.Parse(img.ManifestRaw, "")
	if err != nil {
		t.Fatal(err)
	}
	if docker, err = manifest.Convert(oci, manifest.FormatDocker, nil); err != nil {
		t.Fatal(err)
	}
	return oci, docker
}

// seedConverted seeds a two-layer OCI image at a's r:oci and its Docker
// schema 2 conversion under each of dockerTags.
func seedConverted(t *testing.T, a *registrytest.Registry, layerSize int, dockerTags ...string) (*registrytest.Image, *manifest.Manifest, *manifest.Manifest) {
	t.Helper()
	img := a.Seed("r", "oci", 2, layerSize)
	oci, docker := bothFormats(t, img)
	for _, tag := range dockerTags {
		if err := a.PushManifest("r", tag, manifest.DockerManifest, docker.Raw); err != nil {
			t.Fatal(err)
		}
	}
	return img, oci, docker
}

// A registry that refuses a manifest's type gets the image in the other
// format, blobs unchanged, with the digest the conversion gives (skopeo's:
// see the CLI's interop test); --preserve-digests refuses instead, and
// --format converts without being asked.
func TestCopyConvertsWhenTypeRefused(t *testing.T) {
	ctx := context.Background()
	a := registrytest.Start(t, registrytest.Options{})
	img, ociM, docker := seedConverted(t, a, 100_000, "docker")
	h, opts := dockerHost(t, registry.New())

	tests := []struct {
		name, tag, refuse string
		status            int
		want              *manifest.Manifest
	}{
		{"zot refuses Docker schema 2", "docker", manifest.DockerManifest, http.StatusUnsupportedMediaType, ociM},
		{"OpenShift refuses OCI", "oci", manifest.OCIManifest, http.StatusBadRequest, docker},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := registrytest.Start(t, registrytest.Options{})
			refuseManifests(b, tt.refuse, tt.status)
			src, dst := "docker://"+a.Ref("r")+":"+tt.tag, "docker://"+b.Ref("m")+":v1"

			res, err := h.Copy(ctx, src, dst, opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Descriptor.Digest != tt.want.Digest || res.Converted != manifest.FormatOf(tt.want.MediaType) {
				t.Fatalf("wrote %s (converted %q), want %s", res.Descriptor.Digest, res.Converted, tt.want.Digest)
			}
			raw, mt, err := b.GetManifest("m", "v1")
			if err != nil || string(raw) != string(tt.want.Raw) || mt != tt.want.MediaType {
				t.Fatalf("destination holds %s %s (%v), want %s", mt, raw, err, tt.want.Raw)
			}
			// Blobs went once: the retry in the other format finds them.
			if res.BlobsCopied != len(img.Blobs) || b.Stats().Uploads != len(img.Blobs) {
				t.Fatalf("%d blobs copied, want %d", res.BlobsCopied, len(img.Blobs))
			}
			o := opts
			o.PreserveDigests = true
			_, err = h.Copy(ctx, src, "docker://"+b.Ref("p")+":v1", o)
			if !errors.Is(err, core.ErrManifestRejected) || !strings.Contains(err.Error(), "refused as "+tt.refuse) {
				t.Fatalf("with --preserve-digests: %v, want the registry's refusal", err)
			}
			if _, _, err := b.GetManifest("p", "v1"); err == nil {
				t.Fatal("tagged after a refused manifest")
			}

			// A second copy finds the converted image there.
			if res, err := h.Copy(ctx, src, dst, opts); err != nil || res.BlobsCopied != 0 || res.Descriptor.Digest != tt.want.Digest {
				t.Fatalf("second copy: %+v %v", res, err)
			}
		})
	}

	// An image the other format cannot express fails with both reasons.
	zstd, err := registrytest.NewImageFromLayers(manifest.OCILayerZst, []byte("not really zstd"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Push("r", "zstd", zstd); err != nil {
		t.Fatal(err)
	}
	d := registrytest.Start(t, registrytest.Options{})
	refuseManifests(d, manifest.OCIManifest, http.StatusBadRequest)
	_, err = h.Copy(ctx, "docker://"+a.Ref("r")+":zstd", "docker://"+d.Ref("z")+":v1", opts)
	if !errors.Is(err, core.ErrManifestRejected) || !errors.Is(err, core.ErrUnsupported) || !strings.Contains(err.Error(), "refused as "+manifest.OCIManifest) ||
		!strings.Contains(err.Error(), "Docker schema 2 cannot carry") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("zstd image to a registry refusing OCI: %v", err)
	}

	// --format converts without a refusal, and keeps what is in it.
	c := registrytest.Start(t, registrytest.Options{})
	o := opts
	o.Format = manifest.FormatDocker
	for _, tag := range []string{"oci", "docker"} {
		res, err := h.Copy(ctx, "docker://"+a.Ref("r")+":"+tag, "docker://"+c.Ref("f")+":"+tag, o)
		if err != nil {
			t.Fatal(err)
		}
		if res.Descriptor.Digest != docker.Digest || (res.Converted != "") != (tag == "oci") {
			t.Fatalf("--format v2s2 of %s: %s converted %q", tag, res.Descriptor.Digest, res.Converted)
		}
	}
	o.PreserveDigests = true
	if _, err := h.Copy(ctx, "docker://"+a.Ref("r")+":oci", "docker://"+c.Ref("g")+":x", o); !errors.Is(err, core.ErrUnsupported) || !strings.Contains(err.Error(), "--preserve-digests") {
		t.Fatalf("--format with --preserve-digests: %v", err)
	}
}

// Sync to a registry refusing Docker schema 2 (zot): the job's Docker
// images arrive as OCI (one warning for the job), its OCI ones as they are;
// the next run finds everything up to date, without a refused request.
func TestSyncConvertsWhenTypeRefused(t *testing.T) {
	ctx := context.Background()
	a := registrytest.Start(t, registrytest.Options{})
	_, ociM, _ := seedConverted(t, a, 50_000, "docker", "docker2")
	other := a.Seed("r", "other", 1, 50_000)
	h, opts := dockerHost(t, registry.New())
	b := registrytest.Start(t, registrytest.Options{})
	refuseManifests(b, manifest.DockerManifest, http.StatusUnsupportedMediaType)

	job := repoJob(t, a, b, opts)
	want := map[string]string{"oci": ociM.Digest.String(), "docker": ociM.Digest.String(), "docker2": ociM.Digest.String(), "other": other.Manifest.Digest.String()}
	check := func(rep *host.SyncReport, action host.SyncAction) {
		t.Helper()
		if len(rep.Images) != len(want) {
			t.Fatalf("%d images, want %d", len(rep.Images), len(want))
		}
		for _, r := range rep.Images {
			tag := r.Target[strings.LastIndex(r.Target, ":")+1:]
			if r.Action != action || r.TargetDigest.String() != want[tag] {
				t.Fatalf("%s: %s %s (%s), want %s %s", tag, r.Action, r.TargetDigest, r.Error, action, want[tag])
			}
			if raw, _, err := b.GetManifest("m", tag); err != nil || digest.FromBytes(raw).String() != want[tag] {
				t.Fatalf("%s at the destination: %v", tag, err)
			}
		}
	}
	rep, err := h.Sync(ctx, []host.SyncJob{job}, host.SyncOptions{Parallel: 1})
	if err != nil {
		t.Fatal(err)
	}
	check(rep, host.ActionCopied)
	refused := 0
	for _, r := range b.Requests() {
		if r.Status == http.StatusUnsupportedMediaType {
			refused++
		}
	}
	if refused != 1 {
		t.Fatalf("%d refused manifest PUTs, want 1 (the job learns the format)", refused)
	}

	b.ResetStats()
	rep, err = h.Sync(ctx, []host.SyncJob{job}, host.SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	check(rep, host.ActionSkipped)
	for _, r := range b.Requests() {
		if r.Method != http.MethodHead && r.Method != http.MethodGet {
			t.Fatalf("unchanged run wrote: %s %s (%d)", r.Method, r.Path, r.Status)
		}
	}
}

// A manifest refused whatever its format (MANIFEST_INVALID is not only
// about the type: a registry's own checks answer it too) fails its image,
// and does not make the job write its other images in the other format
// under new digests.
func TestSyncRefusalOfBothFormatsKeepsDigests(t *testing.T) {
	ctx := context.Background()
	a := registrytest.Start(t, registrytest.Options{})
	a.Seed("r", "a-bad", 1, 20_000)
	good := []*registrytest.Image{a.Seed("r", "b-good", 1, 20_000), a.Seed("r", "c-good", 1, 20_000)}
	h, opts := dockerHost(t, registry.New())
	b := registrytest.Start(t, registrytest.Options{})
	b.AddFault(registrytest.Fault{
		Kind: registrytest.Respond,
		Match: func(req *http.Request) bool {
			return req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/manifests/a-bad")
		},
		Status: http.StatusBadRequest,
		Header: http.Header{"Content-Type": {"application/json"}},
		Body:   `{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":"layer size mismatch"}]}`,
		Drain:  true,
	})
	rep, err := h.Sync(ctx, []host.SyncJob{repoJob(t, a, b, opts)}, host.SyncOptions{Parallel: 1, KeepGoing: true})
	if err == nil {
		t.Fatal("no failure")
	}
	for _, r := range rep.Images {
		switch tag := r.Target[strings.LastIndex(r.Target, ":")+1:]; tag {
		case "a-bad":
			if r.Action != host.ActionFailed {
				t.Fatalf("%s: %s", tag, r.Action)
			}
		default:
			want := good[0].Manifest.Digest
			if tag == "c-good" {
				want = good[1].Manifest.Digest
			}
			if r.Action != host.ActionCopied || r.TargetDigest != want {
				t.Fatalf("%s: %s %s, want copied %s (digest kept)", tag, r.Action, r.TargetDigest, want)
			}
		}
	}
}

// indexFixture is a two-platform image pushed to a registry's repository r
// in both formats, and indexes over them:
//   - "oci": the OCI index of the OCI images;
//   - "list": the Docker manifest list of their Docker conversions, which is
//     that index converted;
//   - "mixed": an OCI index of the first image's Docker manifest and the
//     second's OCI manifest;
//   - "noplat": the OCI index without the second entry's platform (no
//     manifest list can hold it).
type indexFixture struct {
	oci, list, mixed *manifest.Manifest
	images           int // blobs of both images
}

func seedIndexes(t *testing.T, a *registrytest.Registry) *indexFixture {
	t.Helper()
	var oci, docker []ocispec.Descriptor
	for i, arch := range []string{"amd64", "arm64"} {
		m, d := bothFormats(t, a.Seed("r", "img"+strconv.Itoa(i), 1, 20_000))
		if err := a.PushManifest("r", d.Digest.String(), manifest.DockerManifest, d.Raw); err != nil {
			t.Fatal(err)
		}
		p := &ocispec.Platform{OS: "linux", Architecture: arch}
		oci = append(oci, ocispec.Descriptor{MediaType: m.MediaType, Digest: m.Digest, Size: int64(len(m.Raw)), Platform: p})
		docker = append(docker, ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: int64(len(d.Raw)), Platform: p})
	}
	push := func(tag string, entries ...ocispec.Descriptor) *manifest.Manifest {
		idx := ocispec.Index{MediaType: manifest.OCIIndex, Manifests: entries}
		idx.SchemaVersion = 2
		raw, err := json.Marshal(idx)
		if err != nil {
			t.Fatal(err)
		}
		m, err := manifest.Parse(raw, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := a.PushManifest("r", tag, manifest.OCIIndex, raw); err != nil {
			t.Fatal(err)
		}
		return m
	}
	f := &indexFixture{images: 4}
	f.oci = push("oci", oci...)
	f.mixed = push("mixed", docker[0], oci[1])
	noplat := oci[1]
	noplat.Platform = nil
	push("noplat", oci[0], noplat)
	var err error
	if f.list, err = manifest.Convert(f.oci, manifest.FormatDocker, docker); err != nil {
		t.Fatal(err)
	}
	if err := a.PushManifest("r", "list", manifest.DockerList, f.list.Raw); err != nil {
		t.Fatal(err)
	}
	return f
}

// writes lists the requests of r that were not reads.
func writes(r *registrytest.Registry) []string {
	var out []string
	for _, q := range r.Requests() {
		if q.Method != http.MethodHead && q.Method != http.MethodGet {
			out = append(out, q.Method+" "+q.Path)
		}
	}
	return out
}

// A Docker manifest list copied whole to a registry refusing Docker
// schema 2: its images and the list itself arrive as OCI, exactly the OCI
// index the list was converted from (the conversion is reversible), and
// the images' blobs went once. An OCI index holding a Docker manifest goes
// the same way: the refused type decides the format, not the index's.
func TestCopyIndexConvertsWhenTypeRefused(t *testing.T) {
	ctx := context.Background()
	a := registrytest.Start(t, registrytest.Options{})
	f := seedIndexes(t, a)
	h, opts := dockerHost(t, registry.New())
	b := registrytest.Start(t, registrytest.Options{})
	refuseManifests(b, manifest.DockerManifest, http.StatusUnsupportedMediaType)
	refuseManifests(b, manifest.DockerList, http.StatusUnsupportedMediaType)
	opts.All = true
	for _, tag := range []string{"list", "mixed"} {
		res, err := h.Copy(ctx, "docker://"+a.Ref("r")+":"+tag, "docker://"+b.Ref("m")+":"+tag, opts)
		if err != nil {
			t.Fatalf("%s: %v", tag, err)
		}
		if res.Descriptor.Digest != f.oci.Digest || res.Descriptor.MediaType != manifest.OCIIndex || res.Converted != manifest.FormatOCI {
			t.Fatalf("%s: wrote %s %s (converted %q), want the OCI index %s", tag, res.Descriptor.MediaType, res.Descriptor.Digest, res.Converted, f.oci.Digest)
		}
	}
	for _, d := range f.oci.Manifests {
		if raw, mt, err := b.GetManifest("m", d.Digest.String()); err != nil || mt != manifest.OCIManifest || digest.FromBytes(raw) != d.Digest {
			t.Fatalf("image %s at the destination: %s %v", d.Digest, mt, err)
		}
	}
	// No blob completed twice: the retry in the other format finds what
	// the refused try stored (an upload the refusal cancelled half-way, in
	// the first try's other image, may start again).
	for d, n := range committedUploads(b) {
		if n > 1 {
			t.Fatalf("blob %s uploaded %d times", d, n)
		}
	}
}

// --all --format on a destination that holds the index unconverted writes
// the converted one; a second run finds it and writes nothing; an index no
// manifest list can hold fails before anything is written.
func TestCopyIndexFormatPlansFirst(t *testing.T) {
	ctx := context.Background()
	a := registrytest.Start(t, registrytest.Options{})
	f := seedIndexes(t, a)
	h, opts := dockerHost(t, registry.New())
	b := registrytest.Start(t, registrytest.Options{})
	opts.All = true
	src, dst := "docker://"+a.Ref("r")+":list", "docker://"+b.Ref("m")+":v1"
	if res, err := h.Copy(ctx, src, dst, opts); err != nil || res.Descriptor.Digest != f.list.Digest {
		t.Fatalf("plain copy: %+v %v", res, err)
	}
	o := opts
	o.Format = manifest.FormatOCI
	res, err := h.Copy(ctx, src, dst, o)
	if err != nil || res.UpToDate || res.Descriptor.Digest != f.oci.Digest {
		t.Fatalf("--format oci over the unconverted index: %+v %v, want %s written", res, err, f.oci.Digest)
	}
	if _, mt, err := b.GetManifest("m", "v1"); err != nil || mt != manifest.OCIIndex {
		t.Fatalf("tag holds %s (%v)", mt, err)
	}
	b.ResetStats()
	res, err = h.Copy(ctx, src, dst, o)
	if err != nil || !res.UpToDate || res.Descriptor.Digest != f.oci.Digest || len(writes(b)) != 0 {
		t.Fatalf("second --format oci copy: %+v %v, writes %v", res, err, writes(b))
	}

	b.ResetStats()
	o.Format = manifest.FormatDocker
	_, err = h.Copy(ctx, "docker://"+a.Ref("r")+":noplat", "docker://"+b.Ref("n")+":v1", o)
	if !errors.Is(err, core.ErrUnsupported) || !strings.Contains(err.Error(), "has no platform") || !strings.Contains(err.Error(), f.oci.Manifests[1].Digest.String()) {
		t.Fatalf("an index no manifest list can hold: %v", err)
	}
	if w := writes(b); len(w) != 0 {
		t.Fatalf("the refused conversion wrote %v", w)
	}
}

// A sync of several tags naming one index writes each child manifest once
// (docker-registry answers MANIFEST_BLOB_UNKNOWN to an index PUT while a
// child it names is being written again); with --format, an image the
// format cannot take fails even when the target holds the source as it is.
func TestSyncSharedChildrenAndFormatFailures(t *testing.T) {
	ctx := context.Background()
	a := registrytest.Start(t, registrytest.Options{})
	f := seedIndexes(t, a)
	for _, tag := range []string{"oci2", "oci3", "oci4"} {
		if err := a.PushManifest("r", tag, manifest.OCIIndex, f.oci.Raw); err != nil {
			t.Fatal(err)
		}
	}
	h, opts := dockerHost(t, registry.New())
	b := registrytest.Start(t, registrytest.Options{})
	job := repoJob(t, a, b, opts)
	job.Tags = tagsWhere(func(tag string) bool { return strings.HasPrefix(tag, "oci") })
	if _, err := h.Sync(ctx, []host.SyncJob{job}, host.SyncOptions{Parallel: 4}); err != nil {
		t.Fatal(err)
	}
	puts := map[string]int{}
	for _, w := range writes(b) {
		puts[w]++
	}
	for _, d := range f.oci.Manifests {
		if n := puts["PUT /v2/m/manifests/"+d.Digest.String()]; n != 1 {
			t.Fatalf("child %s written %d times, want once (%v)", d.Digest, n, puts)
		}
	}

	// The target holds "noplat" as it is; --format v2s2 cannot write it.
	job.Tags = tagsWhere(func(tag string) bool { return tag == "noplat" })
	if _, err := h.Sync(ctx, []host.SyncJob{job}, host.SyncOptions{}); err != nil {
		t.Fatal(err)
	}
	rep, err := h.Sync(ctx, []host.SyncJob{job}, host.SyncOptions{Format: manifest.FormatDocker})
	if err == nil || rep.Failed != 1 || !strings.Contains(rep.Images[0].Error, "has no platform") {
		t.Fatalf("--format v2s2 of an index it cannot express: %v %+v", err, rep.Images)
	}
	// --preserve-digests refuses a conversion even where nothing is to copy.
	job.Tags = tagsWhere(func(tag string) bool { return tag == "oci" })
	rep, err = h.Sync(ctx, []host.SyncJob{job}, host.SyncOptions{Format: manifest.FormatDocker, PreserveDigests: true})
	if err == nil || rep.Failed != 1 || !strings.Contains(rep.Images[0].Error, "--preserve-digests") {
		t.Fatalf("--format with --preserve-digests: %v %+v", err, rep.Images)
	}
}

// tagsWhere is a host.TagFilter of the tags match accepts.
type tagsWhere func(string) bool

func (f tagsWhere) Match(tag string) bool { return f(tag) }

func (f tagsWhere) Select(tags []string) []string {
	var out []string
	for _, t := range tags {
		if f(t) {
			out = append(out, t)
		}
	}
	return out
}

// repoJob mirrors a's repository r to b's m, every platform.
func repoJob(t *testing.T, a, b *registrytest.Registry, opts host.CopyOptions) host.SyncJob {
	t.Helper()
	src, err := ref.Parse("docker://" + a.Ref("r"))
	if err != nil {
		t.Fatal(err)
	}
	dst, err := ref.Parse("docker://" + b.Ref("m"))
	if err != nil {
		t.Fatal(err)
	}
	return host.SyncJob{Kind: host.SyncRepository, Source: src, Target: dst, All: true, SrcOptions: opts.SrcOptions, DstOptions: opts.DstOptions}
}

// committedUploads counts, by digest, the blob uploads r completed
// (answered 201: a monolithic POST, or the PUT closing an upload session).
func committedUploads(r *registrytest.Registry) map[string]int {
	n := map[string]int{}
	for _, q := range r.Requests() {
		if q.IsBlobUpload() && q.Status == http.StatusCreated {
			v, _ := url.ParseQuery(q.RawQuery)
			n[v.Get("digest")]++
		}
	}
	return n
}
