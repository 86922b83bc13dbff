package host_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/host"
)

// A plugin binary that is not executable was skipped without a word: the
// error said only that no plugin serves the transport.
func TestUnusablePluginBinaryNamed(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "stevedore-transport-zap")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := host.New(host.Options{SearchPath: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	_, err = h.ParseEndpoint(context.Background(), "zap:/x:v1")
	if err == nil || !strings.Contains(err.Error(), bin+" is not executable") {
		t.Fatalf("ParseEndpoint: %v, want it to name %s as not executable", err, bin)
	}
}
