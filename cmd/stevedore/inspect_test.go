package main

import (
	"strings"
	"testing"
	"text/template"

	"github.com/stevedore-oci/stevedore/internal/registrytest"
)

func TestMayUseTags(t *testing.T) {
	for tmpl, want := range map[string]bool{
		"{{.Digest}}":                                  false,
		"{{.Digest}} {{.Os}}/{{.Architecture}}":        false,
		"{{range .LayersData}}{{.Digest}} {{end}}":     false,
		"{{if .Labels}}{{index .Labels \"a\"}}{{end}}": false,
		"{{$d := .Digest}}{{$d}}":                      false,
		"{{.RepoTags}}":                                true,
		"{{join .RepoTags \",\"}}":                     true,
		"{{range $.RepoTags}}{{.}}{{end}}":             true,
		"{{json .}}":                                   true,
		"{{.}}":                                        true,
		"{{$}}":                                        true,
		"{{with $x := .}}{{$x.Digest}}{{end}}":         true, // the whole value: could print the tags
		"{{range .Layers}}{{.}}{{end}}":                true, // conservative: "." inside range
	} {
		tp, err := template.New("f").Funcs(formatFuncs).Parse(tmpl)
		if err != nil {
			t.Fatalf("%s: %v", tmpl, err)
		}
		if got := mayUseTags(tp); got != want {
			t.Errorf("mayUseTags(%s) = %v, want %v", tmpl, got, want)
		}
	}
}

// inspect --format asks the registry for the tag list only when the
// template can print it.
func TestInspectFormatTagList(t *testing.T) {
	needPlugin(t, "docker")
	reg := registrytest.Start(t, registrytest.Options{})
	img := reg.Seed("r", "v1", 1, 100)
	tagLists := func() int {
		n := 0
		for _, r := range reg.Requests() {
			if strings.HasSuffix(r.Path, "/tags/list") {
				n++
			}
		}
		return n
	}
	image := "docker://" + reg.Addr + "/r:v1"
	if out := mustRun(t, "inspect", "--tls-verify=false", "-f", "{{.Digest}}", image); out != img.Manifest.Digest.String()+"\n" || tagLists() != 0 {
		t.Fatalf("{{.Digest}}: %q, %d tag lists", out, tagLists())
	}
	if out := mustRun(t, "inspect", "--tls-verify=false", "-f", "{{.RepoTags}}", image); out != "[v1]\n" || tagLists() != 1 {
		t.Fatalf("{{.RepoTags}}: %q, %d tag lists", out, tagLists())
	}
}
