package main

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stevedore-oci/stevedore/examples/custom-transport/ziplayout"
	"github.com/stevedore-oci/stevedore/pluginapi/transporttest"
)

// TestPluginBinary builds this plugin, starts it as Stevedore would (a
// go-plugin child speaking gRPC) and runs the conformance kit through the
// wire: what passes here works from the stevedore CLI.
func TestPluginBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "stevedore-transport-zip")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	remote := transporttest.StartPlugin(t, bin, nil)
	if info := remote.Info(); info.Version != "0.1.0" || len(info.Transports) != 1 || info.Transports[0] != "zip" {
		t.Fatalf("plugin info: %+v", info)
	}
	transporttest.Run(t, transporttest.Harness{
		Plugin:        remote,
		Transport:     ziplayout.Transport,
		NewLocation:   func(t *testing.T) string { return filepath.Join(t.TempDir(), "images.zip") },
		WriteThenRead: true, // written at Commit, like any archive
	})
}
