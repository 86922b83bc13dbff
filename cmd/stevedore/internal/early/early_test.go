package early

import (
	"slices"
	"strings"
	"testing"
)

func TestGuess(t *testing.T) {
	// Binaries on the (pretend) search path: the built-in ones and a third
	// party's "zip".
	find := func(name string) string {
		switch name {
		case "oci", "docker", "dir", "archive", "static", "zip":
			return "/p/stevedore-transport-" + name
		}
		return ""
	}
	unpinned := func() bool { return false }
	for _, c := range []struct {
		args string
		want string // binary names, space-separated
	}{
		{"inspect oci:/l:v1", "oci"},
		{"--debug copy oci:/a:v1 docker://r.example/x:1", "oci docker"},
		{"copy --all -q docker://r/a:1 docker://r/b:1", "docker"},
		{"copy oci-archive:/a.tar docker-archive:/b.tar:x:1", "archive"},
		{"copy dir:/d static:/s", "dir static"},
		{"copy zip:/z.zip oci:/l", "zip oci"},
		{"list-tags docker://r/a", "docker"},
		{"sync -f mirror.yaml oci:/dst", "oci"},
		{"delete oci:/l:v1", "oci"},
		// docker: without // is no reference; user:pass names no binary.
		{"copy --src-creds user:pass docker:/x oci:/l", "oci"},
		{"copy unknown:/x oci:/l", "oci"},
		{"copy Oci:/x", ""},
		// Nothing for help, other verbs, pin files and --registries-conf.
		{"inspect --help oci:/l", ""},
		{"inspect -h oci:/l", ""},
		{"help inspect oci:/l", ""},
		{"--help", ""},
		{"serve --root /s", ""},
		{"plugins", ""},
		{"", ""},
		{"--plugin-lock /f inspect oci:/l", ""},
		{"inspect --plugin-lock=/f oci:/l", ""},
		{"--registries-conf /r copy docker://a/b docker://c/d", ""},
		{"copy --registries-conf=/r docker://a/b docker://c/d", ""},
		{"--unknown-flag inspect oci:/l", ""},
	} {
		got := Guess(strings.Fields(c.args), find, unpinned)
		var want []string
		for _, n := range strings.Fields(c.want) {
			want = append(want, find(n))
		}
		if !slices.Equal(got, want) {
			t.Errorf("Guess(%q) = %q, want %q", c.args, got, want)
		}
	}
	if got := Guess([]string{"inspect", "oci:/l"}, find, func() bool { return true }); got != nil {
		t.Errorf("Guess with a pin file in effect = %q, want nothing", got)
	}
	if got := Guess([]string{"inspect", "oci:/l"}, func(string) string { return "" }, unpinned); got != nil {
		t.Errorf("Guess without the binary = %q, want nothing", got)
	}
}

func TestOff(t *testing.T) {
	for v, want := range map[string]bool{"off": true, "0": true, "FALSE": true, " no ": true, "": false, "on": false, "1": false} {
		if off(v) != want {
			t.Errorf("off(%q) = %v", v, !want)
		}
	}
}
