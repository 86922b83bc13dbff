package main

import (
	"os"
	"path/filepath"
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

func TestNeedsImage(t *testing.T) {
	for tmpl, want := range map[string]bool{
		"{{.Digest}}":                                  false,
		"{{.Name}}@{{.Digest}}":                        false,
		"{{$d := .Digest}}{{$d}}":                      false,
		"{{join .RepoTags \",\"}} {{.Digest}}":         false,
		"{{if .Digest}}{{.Digest}}{{else}}none{{end}}": false,
		"{{.Os}}":                       true,
		"{{.Digest}} {{.Architecture}}": true,
		"{{range .LayersData}}{{.Digest}} {{end}}": true,
		"{{json .}}":                           true,
		"{{$}}":                                true,
		"{{$.Labels}}":                         true,
		"{{with $x := .}}{{$x.Digest}}{{end}}": true, // the whole value
		"{{range .RepoTags}}{{.}}{{end}}":      true, // conservative: "." inside range
		"{{template \"x\" .}}{{define \"x\"}}{{.Digest}}{{end}}": true,
	} {
		tp, err := template.New("f").Funcs(formatFuncs).Parse(tmpl)
		if err != nil {
			t.Fatalf("%s: %v", tmpl, err)
		}
		if got := needsImage(tp); got != want {
			t.Errorf("needsImage(%s) = %v, want %v", tmpl, got, want)
		}
	}
}

// inspect --format asks the registry for the tag list only when the
// template can print it, and for the manifest and config only when it can
// print what they hold; the manifest is then read with one GET by tag, no
// HEAD first.
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
	reg.ResetStats()
	if out := mustRun(t, "inspect", "--tls-verify=false", "-f", "{{.Digest}}", image); out != img.Manifest.Digest.String()+"\n" || tagLists() != 0 {
		t.Fatalf("{{.Digest}}: %q, %d tag lists", out, tagLists())
	}
	var reads []string
	for _, r := range reg.Requests() {
		if strings.Contains(r.Path, "/manifests/") || strings.Contains(r.Path, "/blobs/") {
			reads = append(reads, r.Method+" "+r.Path[strings.LastIndex(r.Path, "/")+1:])
		}
	}
	if len(reads) != 1 || reads[0] != "HEAD v1" {
		t.Fatalf("{{.Digest}} read %v, want the one HEAD of the tag", reads)
	}
	reg.ResetStats()
	if out := mustRun(t, "inspect", "--tls-verify=false", "-f", "{{.Os}}", image); out != "linux\n" {
		t.Fatalf("{{.Os}}: %q", out)
	}
	if st := reg.Stats(); st.ByMethod["GET"] != 2 || st.ByMethod["HEAD"] != 0 {
		t.Fatalf("{{.Os}}: %d GETs and %d HEADs, want GETs of the manifest (by tag) and the config alone", st.ByMethod["GET"], st.ByMethod["HEAD"])
	}
	reg.ResetStats()
	if out := mustRun(t, "inspect", "--tls-verify=false", "--raw", image); out != string(img.ManifestRaw) {
		t.Fatalf("--raw printed %q", out)
	}
	if st := reg.Stats(); st.Requests != 1 || st.ByMethod["GET"] != 1 {
		t.Fatalf("--raw: %d requests (%v), want the one GET of the manifest", st.Requests, st.ByMethod)
	}
	if out := mustRun(t, "inspect", "--tls-verify=false", "-f", "{{.RepoTags}}", image); out != "[v1]\n" || tagLists() != 1 {
		t.Fatalf("{{.RepoTags}}: %q, %d tag lists", out, tagLists())
	}
}

// --registries-conf reaches the docker transport: a name no registry
// answers to is read from the location registries.conf rewrites it to
// (plain HTTP allowed there by insecure, no --tls-verify given).
func TestRegistriesConfFlag(t *testing.T) {
	needPlugin(t, "docker")
	reg := registrytest.Start(t, registrytest.Options{})
	img := reg.Seed("mirror/app", "v1", 1, 100)
	conf := filepath.Join(t.TempDir(), "registries.conf")
	body := "[[registry]]\nprefix = \"example.invalid/app\"\nlocation = \"" + reg.Ref("mirror/app") + "\"\ninsecure = true\n"
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := mustRun(t, "--registries-conf", conf, "inspect", "-f", "{{.Digest}}", "docker://example.invalid/app:v1"); out != img.Manifest.Digest.String()+"\n" {
		t.Fatalf("inspect through registries.conf: %q", out)
	}
	dir := t.TempDir()
	mustRun(t, "--registries-conf", conf, "copy", "-q", "docker://example.invalid/app:v1", "oci:"+dir+":v1")
	if out := mustRun(t, "inspect", "-f", "{{.Digest}}", "oci:"+dir+":v1"); out != img.Manifest.Digest.String()+"\n" {
		t.Fatalf("copied image: %q", out)
	}
	// A file that is not there is an error, not no configuration.
	if _, errOut, err := runCLI(t, "--registries-conf", conf+".missing", "inspect", "docker://example.invalid/app:v1"); err == nil || !strings.Contains(errOut, "registries.conf") {
		t.Fatalf("missing file: %v %q", err, errOut)
	}
}
