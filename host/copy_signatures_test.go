package host_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/layer/layertest"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/internal/peertest"
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
	"github.com/stevedore-oci/stevedore/plugins/dir/dirtransport"
	"github.com/stevedore-oci/stevedore/plugins/oci-layout/ocilayout"
)

func names(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// The copy engine moves each manifest's signatures between endpoints that
// list and store them, the top-level one's before its tag; a destination
// that cannot store them gets the image and the host logs one warning with
// their number, unless RemoveSignatures.
func TestCopySignatures(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	logs := &transporttest.LogBuffer{}
	h, err := host.New(host.Options{
		SearchPath: []string{t.TempDir()},
		InProcess:  []pluginapi.Plugin{ocilayout.New(), dirtransport.New(nil)},
		Logger:     hclog.New(&hclog.LoggerOptions{Name: "stevedore", Level: hclog.Warn, Output: logs}),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ix := layertest.NewIndex("hostsig", "amd64", "arm64")
	if err := layertest.WriteIndex(filepath.Join(tmp, "fx"), "t", ix); err != nil {
		t.Fatal(err)
	}
	a := filepath.Join(tmp, "a")
	if _, err := h.Copy(ctx, "oci:"+tmp+"/fx:t", "dir:"+a, host.CopyOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	amd := ix.Images[0].Manifest.Desc.Digest.Encoded()
	arm := ix.Images[1].Manifest.Desc.Digest.Encoded()
	want := map[string]string{
		"signature-1": "\xa3index 1", "signature-2": "\xa3index 2",
		amd + ".signature-1": "\xa3amd64 1",
		arm + ".signature-1": "\xa3arm64 1", arm + ".signature-2": "\xa3arm64 2", arm + ".signature-3": "\xa3arm64 3",
	}
	for n, s := range want {
		if err := os.WriteFile(filepath.Join(a, n), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// --all: every file, byte for byte.
	res, err := h.Copy(ctx, "dir:"+a, "dir:"+tmp+"/b", host.CopyOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := peertest.SignatureFiles(t, filepath.Join(tmp, "b")); !maps.Equal(got, want) || res.SignaturesCopied != 6 || res.SignaturesDropped != 0 {
		t.Fatalf("--all: signature files %v (copied %d, dropped %d), want %v", names(got), res.SignaturesCopied, res.SignaturesDropped, names(want))
	}
	// One platform: its signatures are the image's.
	res, err = h.Copy(ctx, "dir:"+a, "dir:"+tmp+"/one", host.CopyOptions{Platforms: []ocispec.Platform{{OS: "linux", Architecture: "arm64"}}})
	if err != nil {
		t.Fatal(err)
	}
	wantOne := map[string]string{"signature-1": "\xa3arm64 1", "signature-2": "\xa3arm64 2", "signature-3": "\xa3arm64 3"}
	if got := peertest.SignatureFiles(t, filepath.Join(tmp, "one")); !maps.Equal(got, wantOne) || res.SignaturesCopied != 3 {
		t.Fatalf("one platform: signature files %v (copied %d), want %v", names(got), res.SignaturesCopied, names(wantOne))
	}
	if logs.String() != "" {
		t.Fatalf("copies that kept every signature logged: %s", logs)
	}

	// To oci: (no signatures there) the image arrives; one warning line.
	res, err = h.Copy(ctx, "dir:"+a, "oci:"+tmp+"/o:v1", host.CopyOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if res.SignaturesDropped != 6 || len(lines) != 1 || !strings.Contains(lines[0], "[WARN]") || !strings.Contains(lines[0], "dropped 6 signature(s)") || !strings.Contains(lines[0], "--remove-signatures") {
		t.Fatalf("dir -> oci: dropped %d, logged %q; want one warning about 6", res.SignaturesDropped, logs)
	}
	if res.Descriptor.Digest != ix.Index.Desc.Digest {
		t.Fatalf("dir -> oci copied %s, want %s", res.Descriptor.Digest, ix.Index.Desc.Digest)
	}
	// RemoveSignatures: silent, and nothing copied between dirs either.
	before := logs.String()
	if res, err = h.Copy(ctx, "dir:"+a, "oci:"+tmp+"/o:v2", host.CopyOptions{All: true, RemoveSignatures: true}); err != nil || res.SignaturesDropped != 0 {
		t.Fatalf("RemoveSignatures to oci: %v, dropped %d", err, res.SignaturesDropped)
	}
	if res, err = h.Copy(ctx, "dir:"+a, "dir:"+tmp+"/r", host.CopyOptions{All: true, RemoveSignatures: true}); err != nil || res.SignaturesCopied != 0 {
		t.Fatalf("RemoveSignatures to dir: %v, copied %d", err, res.SignaturesCopied)
	}
	if got := peertest.SignatureFiles(t, filepath.Join(tmp, "r")); len(got) != 0 {
		t.Fatalf("RemoveSignatures to dir wrote %v", names(got))
	}
	if logs.String() != before {
		t.Fatalf("RemoveSignatures logged: %s", strings.TrimPrefix(logs.String(), before))
	}
}
