package registry

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/internal/registrytest"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// confPlugin is a test plugin reading the registries.conf body.
func confPlugin(t *testing.T, body string) *Plugin {
	t.Helper()
	p := testPlugin()
	p.RegistriesConf = writeFile(t, filepath.Join(t.TempDir(), "registries.conf"), body)
	return p
}

func openAs(p *Plugin, location string, mode pluginapi.Mode, opts map[string]string) (pluginapi.Endpoint, error) {
	return p.Open(context.Background(), pluginapi.OpenRequest{Transport: "docker", Location: location, Mode: mode, Options: opts})
}

// requestsTo counts the requests reg saw for repository paths under repo.
func requestsTo(reg *registrytest.Registry, repo string) int {
	n := 0
	for _, r := range reg.Requests() {
		if strings.HasPrefix(r.Path, "/v2/"+repo+"/") {
			n++
		}
	}
	return n
}

// TestRegistriesConfMirrors reads example.invalid/app, a name no registry
// answers to, through registries.conf: its location is a real registry
// (plain HTTP, allowed by insecure), and a mirror on another registry is
// tried first. An image the mirror has is read from it whole; one it lacks
// comes from the location; a digest-only mirror is skipped for tags.
func TestRegistriesConfMirrors(t *testing.T) {
	ctx := context.Background()
	primary := registrytest.Start(t, registrytest.Options{})
	mirrorReg := registrytest.Start(t, registrytest.Options{})
	onMirror := mirrorReg.Seed("mirrors/app", "v1", 1, 2000)
	onPrimary := primary.Seed("app", "v2", 1, 3000)
	p := confPlugin(t, fmt.Sprintf(`
[[registry]]
prefix = "example.invalid/app"
location = %q
insecure = true
[[registry.mirror]]
location = %q
insecure = true
`, primary.Ref("app"), mirrorReg.Ref("mirrors/app")))

	ep, err := openAs(p, "example.invalid/app", pluginapi.ModeRead, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := ep.(*Reader)
	desc, err := r.Resolve(ctx, "v1")
	if err != nil || desc.Digest != onMirror.Manifest.Digest {
		t.Fatalf("resolve v1: %v %v, want the mirror's %s", desc.Digest, err, onMirror.Manifest.Digest)
	}
	if raw, err := r.GetManifest(ctx, desc); err != nil || !bytes.Equal(raw, onMirror.ManifestRaw) {
		t.Fatalf("manifest from the mirror: %v", err)
	}
	layer := onMirror.Layers[0]
	if b, err := readBlob(ctx, r, layer); err != nil || !bytes.Equal(b, onMirror.Blobs[layer.Digest]) {
		t.Fatalf("layer from the mirror: %v", err)
	}
	if n := requestsTo(primary, "app"); n != 0 {
		t.Fatalf("%d requests to the primary for an image the mirror has", n)
	}

	// v2 is only on the primary: the mirror is asked, then the location.
	ep, err = openAs(p, "example.invalid/app", pluginapi.ModeRead, nil)
	if err != nil {
		t.Fatal(err)
	}
	r = ep.(*Reader)
	desc, err = r.Resolve(ctx, "v2")
	if err != nil || desc.Digest != onPrimary.Manifest.Digest {
		t.Fatalf("resolve v2: %v %v", desc.Digest, err)
	}
	layer = onPrimary.Layers[0]
	if b, err := readBlob(ctx, r, layer); err != nil || !bytes.Equal(b, onPrimary.Blobs[layer.Digest]) {
		t.Fatalf("layer from the primary: %v", err)
	}
	// Missing everywhere: the error names the location and the mirror.
	_, err = r.Resolve(ctx, "v3")
	mustIs(t, err, core.ErrNotFound)
	if !strings.Contains(err.Error(), primary.Addr) || !strings.Contains(err.Error(), "mirrors tried first") || !strings.Contains(err.Error(), mirrorReg.Addr) {
		t.Fatalf("error %q does not name both registries", err)
	}

	// A partial mirror: it has v4's manifest but not its layer, which comes
	// from the location (checked against its digest like any blob).
	partial := primary.Seed("app", "v4", 1, 4000)
	if err := mirrorReg.Push("mirrors/app", "v4", partial); err != nil {
		t.Fatal(err)
	}
	layer = partial.Layers[0]
	req, _ := http.NewRequest(http.MethodDelete, mirrorReg.URL+"/v2/mirrors/app/blobs/"+layer.Digest.String(), nil)
	if resp, err := mirrorReg.HTTPClient().Do(req); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delete the mirror's layer: %v %v", resp, err)
	}
	ep, err = openAs(p, "example.invalid/app", pluginapi.ModeRead, nil)
	if err != nil {
		t.Fatal(err)
	}
	r = ep.(*Reader)
	primary.ResetStats()
	if desc, err := r.Resolve(ctx, "v4"); err != nil || desc.Digest != partial.Manifest.Digest {
		t.Fatalf("resolve v4: %v", err)
	}
	if b, err := readBlob(ctx, r, layer); err != nil || !bytes.Equal(b, partial.Blobs[layer.Digest]) {
		t.Fatalf("layer missing on the mirror: %v", err)
	}
	if n := requestsTo(primary, "app"); n != 1 {
		t.Fatalf("%d requests to the location, want the one blob GET", n)
	}

	// A digest-only mirror is not asked for a tag, and is for a digest.
	p = confPlugin(t, fmt.Sprintf(`
[[registry]]
prefix = "example.invalid/app"
location = %q
insecure = true
mirror-by-digest-only = true
[[registry.mirror]]
location = %q
insecure = true
`, primary.Ref("app"), mirrorReg.Ref("mirrors/app")))
	mirrorReg.ResetStats()
	ep, err = openAs(p, "example.invalid/app", pluginapi.ModeRead, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ep.(*Reader).Resolve(ctx, "v2"); err != nil {
		t.Fatal(err)
	}
	if n := requestsTo(mirrorReg, "mirrors/app"); n != 0 {
		t.Fatalf("a digest-only mirror got %d requests for a tag", n)
	}
	if desc, err := ep.(*Reader).Resolve(ctx, onMirror.Manifest.Digest.String()); err != nil || desc.Digest != onMirror.Manifest.Digest {
		t.Fatalf("by digest through the mirror: %v", err)
	}
}

// TestRegistriesConfWrites: rewriting and mirrors are for reads (as in
// containers/image); a blocked prefix refuses reads only; insecure applies
// to writes too.
func TestRegistriesConfWrites(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	p := confPlugin(t, fmt.Sprintf(`
[[registry]]
location = %q
insecure = true
blocked = true
`, reg.Addr))
	_, err := openAs(p, reg.Ref("app"), pluginapi.ModeRead, nil)
	mustIs(t, err, core.ErrDenied)
	if !strings.Contains(err.Error(), "blocked by "+p.RegistriesConf) {
		t.Fatalf("error %q does not name the file", err)
	}
	ep, err := openAs(p, reg.Ref("app"), pluginapi.ModeWrite, nil)
	if err != nil {
		t.Fatal(err)
	}
	img, err := registrytest.NewImage(1, 100)
	if err != nil {
		t.Fatal(err)
	}
	pushImage(t, ep.(*Writer), img, "v1") // plain HTTP: insecure applied
	if _, _, err := reg.GetManifest("app", "v1"); err != nil {
		t.Fatal(err)
	}
}

// TestRegistriesConfInsecureTLS: insecure accepts a certificate no CA here
// signed; an explicit tls-verify=true wins over it, as for skopeo.
func TestRegistriesConfInsecureTLS(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{TLS: true})
	img := reg.Seed("app", "v1", 1, 100)

	plain := testPlugin()
	plain.RegistriesConf = writeFile(t, filepath.Join(t.TempDir(), "empty.conf"), "")
	ep, err := openAs(plain, reg.Ref("app"), pluginapi.ModeRead, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ep.(*Reader).Resolve(ctx, "v1"); err == nil {
		t.Fatal("an unknown CA was trusted without insecure")
	}

	p := confPlugin(t, fmt.Sprintf("[[registry]]\nlocation = %q\ninsecure = true\n", reg.Addr))
	ep, err = openAs(p, reg.Ref("app"), pluginapi.ModeRead, nil)
	if err != nil {
		t.Fatal(err)
	}
	if desc, err := ep.(*Reader).Resolve(ctx, "v1"); err != nil || desc.Digest != img.Manifest.Digest {
		t.Fatalf("insecure registry: %v", err)
	}
	ep, err = openAs(p, reg.Ref("app"), pluginapi.ModeRead, map[string]string{"tls-verify": "true"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ep.(*Reader).Resolve(ctx, "v1"); err == nil {
		t.Fatal("tls-verify=true did not win over insecure")
	}
}

// TestRegistriesConfCredentialHelpers: credential-helpers names where
// credentials come from, in order: a docker-credential helper, and
// "containers-auth.json" for the auth files; without the latter the files
// are not read.
func TestRegistriesConfCredentialHelpers(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthBasic})
	reg.Seed("app", "v1", 1, 100)
	home := isolateHome(t)
	credHelper(t, "stvconf", reg.Addr)
	noCreds := map[string]string{"creds": ""}
	open := func(body string) *Reader {
		return openReader(t, confPlugin(t, body), reg, "app", noCreds)
	}

	r := open(`credential-helpers = ["stvconf"]`)
	if _, err := r.Resolve(ctx, "v1"); err != nil {
		t.Fatalf("helper from registries.conf: %v", err)
	}
	if got := r.creds.describe(); got != "credential helper docker-credential-stvconf (credential-helpers in registries.conf)" {
		t.Fatalf("source %q", got)
	}

	// Only the auth files, which hold a wrong password: refused, and the
	// helper was not asked.
	writeAuthFile(t, filepath.Join(home, ".docker", "config.json"), map[string]any{"auths": map[string]any{reg.Addr: basicEntry(registrytest.Username, "wrong")}})
	_, err := open(`credential-helpers = ["containers-auth.json"]`).Resolve(ctx, "v1")
	mustIs(t, err, core.ErrUnauthorized)
	// The files first, then the helper: the files' entry wins.
	_, err = open(`credential-helpers = ["containers-auth.json", "stvconf"]`).Resolve(ctx, "v1")
	mustIs(t, err, core.ErrUnauthorized)
	// The helper first.
	if _, err := open(`credential-helpers = ["stvconf", "containers-auth.json"]`).Resolve(ctx, "v1"); err != nil {
		t.Fatalf("helper before the files: %v", err)
	}
	// A helper that has nothing for the registry, then nothing else: the
	// error names what was searched.
	credHelper(t, "empty", "elsewhere.example")
	_, err = open(`credential-helpers = ["empty"]`).Resolve(ctx, "v1")
	mustIs(t, err, core.ErrUnauthorized)
	if !strings.Contains(err.Error(), "no entry for "+reg.Addr+" in docker-credential-empty") {
		t.Fatalf("error %q does not say what was searched", err)
	}
}

// Credentials given for a reference (--creds) go to its registry only: a
// mirror on another host does not get them (containers/image drops them
// too), and the image comes from the registry they are for.
func TestRegistriesConfMirrorGetsNoCreds(t *testing.T) {
	ctx := context.Background()
	primary := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthBasic})
	mirrorReg := registrytest.Start(t, registrytest.Options{Auth: registrytest.AuthBasic})
	img := primary.Seed("app", "v1", 1, 2000)
	mirrorReg.Seed("mirrors/app", "v1", 1, 2000)
	p := confPlugin(t, fmt.Sprintf(`
[[registry]]
location = %q
insecure = true
[[registry.mirror]]
location = %q
insecure = true
`, primary.Addr, mirrorReg.Addr+"/mirrors"))
	isolateHome(t)
	ep, err := openAs(p, primary.Ref("app"), pluginapi.ModeRead, map[string]string{"creds": registrytest.Username + ":" + registrytest.Password})
	if err != nil {
		t.Fatal(err)
	}
	desc, err := ep.(*Reader).Resolve(ctx, "v1")
	if err != nil || desc.Digest != img.Manifest.Digest {
		t.Fatalf("resolve: %v %v, want the primary's %s", desc.Digest, err, img.Manifest.Digest)
	}
	for _, r := range mirrorReg.Requests() {
		if a := r.Header.Get("Authorization"); a != "" {
			t.Fatalf("the mirror got credentials: %s %s with %q", r.Method, r.Path, a)
		}
	}
}
