package pluginapi

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/internal/proctest"
)

func TestInfo(t *testing.T) {
	rp := startPlugin(t, nil)
	want := PluginInfo{Transports: []string{"mem"}, Version: "test-1.0", ProtocolVersions: []int{1}, DataPlane: true}
	if got := rp.Info(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Info = %+v, want %+v", got, want)
	}
	if got := rp.Transports(); !slices.Equal(got, []string{"mem"}) {
		t.Fatalf("Transports = %v", got)
	}
	if !rp.UsesDataPlane() {
		t.Fatal("UsesDataPlane = false for a plugin with a data plane")
	}
}

// A plugin without the data plane (here: disabled by its environment) is
// served over gRPC streams, as is a host with STEVEDORE_DATAPLANE=grpc.
func TestDataPlaneFallbackSelection(t *testing.T) {
	rp := startPlugin(t, []string{EnvDataPlane + "=grpc"})
	if rp.Info().DataPlane || rp.UsesDataPlane() {
		t.Fatalf("plugin without data plane: Info.DataPlane=%v UsesDataPlane=%v", rp.Info().DataPlane, rp.UsesDataPlane())
	}
	ctx := testCtx(t)
	data, desc := randomBlob(3<<20, 9)
	w := open(t, rp, "fb", ModeWrite, nil)
	if err := w.PutBlob(ctx, desc, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if got, _ := readDigest(t, ctx, w, desc, 0); got != desc.Digest {
		t.Fatalf("digest %s, want %s", got, desc.Digest)
	}

	t.Setenv(EnvDataPlane, "grpc")
	if rp := startPlugin(t, nil); rp.UsesDataPlane() {
		t.Fatal("host with STEVEDORE_DATAPLANE=grpc uses the data plane")
	}
}

func TestCapabilities(t *testing.T) {
	rp := startPlugin(t, nil)
	ctx := testCtx(t)
	w := open(t, rp, "caps", ModeWrite, nil)
	r := open(t, rp, "caps", ModeRead, nil)
	if got, want := w.Capabilities(), []string{CapSource, CapDest, CapListTags, CapListRepositories, CapDelete}; !slices.Equal(got, want) {
		t.Fatalf("write endpoint capabilities %v, want %v", got, want)
	}
	if got, want := r.Capabilities(), []string{CapSource, CapListTags, CapListRepositories}; !slices.Equal(got, want) {
		t.Fatalf("read endpoint capabilities %v, want %v", got, want)
	}
	if !w.Has(CapDest) || r.Has(CapDest) || w.Has(CapMount) {
		t.Fatal("Has disagrees with Capabilities")
	}
	// Absent capabilities fail locally with ErrUnsupported.
	_, desc := randomBlob(5, 10)
	checks := map[string]error{
		"PutBlob":     r.PutBlob(ctx, desc, bytes.NewReader([]byte("hello"))),
		"PutManifest": r.PutManifest(ctx, desc, []byte("x"), ""),
		"Delete":      r.Delete(ctx, "latest"),
		"Commit":      w.Commit(ctx),
		"PutBlobFile": w.PutBlobFile(ctx, desc, "/nonexistent"),
	}
	_, checks["MountBlob"] = w.MountBlob(ctx, desc, "elsewhere")
	_, checks["Referrers"] = w.Referrers(ctx, desc.Digest, "")
	_, checks["BlobPath"] = w.BlobPath(ctx, desc)
	_, checks["HasBlob"] = r.HasBlob(ctx, desc)
	_, checks["StageBlob"] = w.StageBlob(ctx, desc)
	checks["CommitStagedBlob"] = w.CommitStagedBlob(ctx, desc, "/nonexistent")
	checks["AbortStagedBlob"] = w.AbortStagedBlob(ctx, "/nonexistent")
	for name, err := range checks {
		if !errors.Is(err, core.ErrUnsupported) || !strings.HasPrefix(err.Error(), "mem:caps: ") {
			t.Errorf("%s: err = %v, want mem:caps: ... unsupported", name, err)
		}
	}
	// The plugin enforces capabilities too: a host that ignores them gets
	// Unimplemented, mapped to ErrUnsupported.
	forged := &RemoteEndpoint{p: r.p, handle: r.handle, name: r.name, caps: []string{CapDest, CapMount}}
	if _, err := forged.MountBlob(ctx, desc, "x"); !errors.Is(err, core.ErrUnsupported) || err.Error() != "mem:caps: mount: unsupported" {
		t.Errorf("forged MountBlob: err = %v", err)
	}
	if err := forged.PutBlob(ctx, desc, bytes.NewReader([]byte("hello"))); !errors.Is(err, core.ErrUnsupported) {
		t.Errorf("forged PutBlob: err = %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	rp := startPlugin(t, nil)
	ctx := testCtx(t)
	_, err := rp.Open(ctx, OpenRequest{Transport: "nope", Location: "x", Mode: ModeRead})
	if !errors.Is(err, core.ErrUnsupported) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown transport: err = %v", err)
	}
	_, err = rp.Open(ctx, OpenRequest{Transport: "mem", Location: "", Mode: ModeRead})
	if !errors.Is(err, core.ErrInvalid) || err.Error() != "mem: empty location: invalid" {
		t.Errorf("empty location: err = %v", err)
	}
	_, err = rp.Open(ctx, OpenRequest{Transport: "mem", Location: "x"})
	if !errors.Is(err, core.ErrInvalid) {
		t.Errorf("no mode: err = %v", err)
	}
	ep := open(t, rp, "closed", ModeRead, nil)
	if err := ep.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ep.Resolve(ctx, "latest"); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("call after Close: err = %v", err)
	}
}

// Manifests, tags, deletes and descriptor fidelity over the wire.
func TestManifestsAndTags(t *testing.T) {
	rp := startPlugin(t, nil)
	ctx := testCtx(t)
	w := open(t, rp, "m", ModeWrite, nil)
	r := open(t, rp, "m", ModeRead, nil)
	raw := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}`)
	desc := ocispec.Descriptor{
		MediaType:    ocispec.MediaTypeImageManifest,
		Digest:       digest.FromBytes(raw),
		Size:         int64(len(raw)),
		URLs:         []string{"https://example.com/x"},
		Annotations:  map[string]string{"org.opencontainers.image.ref.name": "v1", "empty": ""},
		Data:         []byte{0, 1, 2},
		Platform:     &ocispec.Platform{Architecture: "arm64", OS: "linux", Variant: "v8", OSFeatures: []string{"f"}},
		ArtifactType: "application/vnd.example+type",
	}
	if err := w.PutManifest(ctx, desc, raw, "v1"); err != nil {
		t.Fatal(err)
	}
	if err := w.PutManifest(ctx, desc, raw, "v2"); err != nil {
		t.Fatal(err)
	}
	got, err := r.Resolve(ctx, "v1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, desc) {
		t.Fatalf("descriptor changed on the wire:\n got %+v\nwant %+v", got, desc)
	}
	if b, err := r.GetManifest(ctx, desc); err != nil || string(b) != string(raw) {
		t.Fatalf("GetManifest = %q, %v", b, err)
	}
	if tags, err := r.ListTags(ctx); err != nil || !slices.Equal(tags, []string{"v1", "v2"}) {
		t.Fatalf("ListTags = %v, %v", tags, err)
	}
	open(t, rp, "m/sub", ModeRead, nil)
	open(t, rp, "mx", ModeRead, nil)
	if locs, err := r.ListRepositories(ctx); err != nil || !slices.Equal(locs, []string{"m", "m/sub"}) {
		t.Fatalf("ListRepositories = %v, %v", locs, err)
	}
	if err := w.Delete(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(ctx, "v1"); !errors.Is(err, core.ErrNotFound) || err.Error() != `mem:m: tag "v1": not found` {
		t.Fatalf("Resolve deleted tag: err = %v", err)
	}
	if err := w.Delete(ctx, "v1"); !errors.Is(err, core.ErrNotFound) {
		t.Fatalf("Delete twice: err = %v", err)
	}
	bad := desc
	bad.Size++
	var sm *core.SizeMismatchError
	if err := w.PutManifest(ctx, bad, raw, "v3"); !errors.As(err, &sm) || sm.Expected != bad.Size {
		t.Fatalf("PutManifest with wrong size: err = %v", err)
	}
}

// The plugin exits by itself when its host dies without stopping it.
func TestPluginExitsWhenHostDies(t *testing.T) {
	// sh plays the host: it starts the plugin in the background and is then
	// SIGKILLed.
	sh := exec.Command("sh", "-c", `"$0" >/dev/null & echo $!; exec sleep 60`, pluginBin)
	sh.Env = []string{Handshake.MagicCookieKey + "=" + Handshake.MagicCookieValue, "PATH=" + os.Getenv("PATH")}
	out, err := sh.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 32)
	n, _ := out.Read(buf)
	pid, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		_ = sh.Process.Kill()
		t.Fatalf("plugin pid %q: %v", buf[:n], err)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	time.Sleep(300 * time.Millisecond)
	if !proctest.Alive(pid) {
		t.Fatal("plugin is not running while its host is alive")
	}
	_ = sh.Process.Kill()
	_ = sh.Wait()
	deadline := time.Now().Add(3 * time.Second)
	for proctest.Alive(pid) {
		if time.Now().After(deadline) {
			t.Fatal("plugin still running 3s after its host died")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A blob up to SmallBlob goes over the gRPC connection both ways: a lazy
// data plane is not made for it. A larger one makes it.
func TestSmallBlobsSkipDataPlane(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("TMPDIR", t.TempDir())
	dp := NewLazyDataPlane()
	t.Cleanup(func() { dp.Close() })
	rp := startPlugin(t, nil, WithDataPlane(dp))
	ctx := testCtx(t)
	w := open(t, rp, "small", ModeWrite, nil)
	data, desc := randomBlob(SmallBlob, 11)
	if err := w.PutBlob(ctx, desc, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if got, _ := readDigest(t, ctx, w, desc, 0); got != desc.Digest {
		t.Fatalf("digest %s, want %s", got, desc.Digest)
	}
	if dp.Path() != "" {
		t.Fatalf("a %d-byte blob made the data plane (%s)", desc.Size, dp.Path())
	}
	data, desc = randomBlob(SmallBlob+1, 12)
	if err := w.PutBlob(ctx, desc, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if dp.Path() == "" {
		t.Fatal("a blob over SmallBlob did not use the data plane")
	}
}
