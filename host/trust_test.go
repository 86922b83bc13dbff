package host

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
)

const (
	sumA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	sumB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestParsePins(t *testing.T) {
	in := "# comment\n\n" +
		sumA + "  oci\n" +
		"sha256:" + strings.ToUpper(sumB) + "  stevedore-transport-oci\n" + // same name, second allowed sum
		sumA + " *stevedore-transport-zip\n" + // sha256sum binary mode
		sumB + "\t/opt/plugins/stevedore-transport-docker\n" +
		sumA + "  rel/stevedore-transport-dir\n" +
		sumB + "\t/opt/my plugins/stevedore-transport-static\n"
	p, err := ParsePins(strings.NewReader(in), "/etc/stevedore/plugins.lock")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		bin    PluginBinary
		sums   []string
		pinned bool
	}{
		{PluginBinary{Name: "oci", Path: "/anywhere/stevedore-transport-oci"}, []string{sumA, sumB}, true},
		{PluginBinary{Name: "zip", Path: "/x/stevedore-transport-zip"}, []string{sumA}, true},
		{PluginBinary{Name: "docker", Path: "/opt/plugins/stevedore-transport-docker"}, []string{sumB}, true},
		{PluginBinary{Name: "docker", Path: "/elsewhere/stevedore-transport-docker"}, nil, false},
		{PluginBinary{Name: "dir", Path: "/etc/stevedore/rel/stevedore-transport-dir"}, []string{sumA}, true},
		{PluginBinary{Name: "static", Path: "/x/stevedore-transport-static"}, nil, false},
		{PluginBinary{Name: "static", Path: "/opt/my plugins/stevedore-transport-static"}, []string{sumB}, true},
	} {
		sums, pinned := p.For(tt.bin)
		if pinned != tt.pinned || !slices.Equal(sums, tt.sums) {
			t.Errorf("For(%s) = %v, %v; want %v, %v", tt.bin.Path, sums, pinned, tt.sums, tt.pinned)
		}
	}
	for _, bad := range []string{"nothex  oci", sumA, sumA[:63] + "  oci", sumA + "  "} {
		if _, err := ParsePins(strings.NewReader(bad+"\n"), "f"); !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("ParsePins(%q) = %v, want ErrInvalid naming line 1", bad, err)
		}
	}
}

func TestPinsPathWinsOverName(t *testing.T) {
	p, err := ParsePins(strings.NewReader(sumA+"  oci\n"+sumB+"  /p/stevedore-transport-oci\n"), "f")
	if err != nil {
		t.Fatal(err)
	}
	if sums, _ := p.For(PluginBinary{Name: "oci", Path: "/p/stevedore-transport-oci"}); !slices.Equal(sums, []string{sumB}) {
		t.Fatalf("path pin not preferred: %v", sums)
	}
}

func TestLoadPins(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	if p, err := LoadPins(""); p != nil || err != nil {
		t.Fatalf("missing default pin file: %v, %v; want nil, nil", p, err)
	}
	if _, err := LoadPins(filepath.Join(t.TempDir(), "nope.lock")); err == nil || !strings.Contains(err.Error(), "nope.lock") {
		t.Fatalf("missing explicit pin file: %v", err)
	}
	def := DefaultPinFile()
	os.MkdirAll(filepath.Dir(def), 0o755)
	os.WriteFile(def, []byte(sumA+"  oci\n"), 0o644)
	p, err := LoadPins("")
	if err != nil || p.Len() != 1 || p.File != def {
		t.Fatalf("default pin file: %+v, %v", p, err)
	}
}

func TestPinCheck(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "stevedore-transport-x")
	os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755)
	actual, err := FileSHA256(bin)
	if err != nil {
		t.Fatal(err)
	}
	b := PluginBinary{Name: "x", Path: bin}

	var none *Pins
	if sum, err := none.check(b); sum != nil || err != nil {
		t.Fatalf("no pins: %v, %v", sum, err)
	}
	ok, _ := ParsePins(strings.NewReader(actual+"  x\n"), "lock")
	if sum, err := ok.check(b); err != nil || len(sum) != 32 {
		t.Fatalf("matching pin: %x, %v", sum, err)
	}
	wrong, _ := ParsePins(strings.NewReader(sumA+"  x\n"), "lock")
	_, err = wrong.check(b)
	var ce *ChecksumError
	if !errors.As(err, &ce) || !errors.Is(err, core.ErrDenied) {
		t.Fatalf("mismatch: %v, want a *ChecksumError wrapping ErrDenied", err)
	}
	msg := err.Error()
	for _, want := range []string{"plugin x (" + bin + ")", "sha256 " + actual, "pinned " + sumA, "lock"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}

// A pin by path holds when the binary is reached through a symbolic link
// (a search directory that is a link to the pinned one).
func TestPinByPathThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "bin")
	os.MkdirAll(real, 0o755)
	bin := filepath.Join(real, "stevedore-transport-x")
	os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	p, err := ParsePins(strings.NewReader(sumA+"  "+bin+"\n"), "lock")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.check(PluginBinary{Name: "x", Path: filepath.Join(link, "stevedore-transport-x")}); !errors.Is(err, core.ErrDenied) {
		t.Fatalf("a changed binary reached through a link to its pinned directory: %v, want refused", err)
	}
}
