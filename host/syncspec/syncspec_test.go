package syncspec

import (
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/ref"
	"github.com/stevedore-oci/stevedore/host"
)

func TestParseEndpoint(t *testing.T) {
	cases := []struct {
		in    string
		want  ref.Endpoint
		image bool
	}{
		{"alpine", ref.Endpoint{Transport: "docker", Location: "docker.io/library/alpine"}, false},
		{"alpine:3.20", ref.Endpoint{Transport: "docker", Location: "docker.io/library/alpine", Ref: "3.20"}, true},
		{"docker://alpine", ref.Endpoint{Transport: "docker", Location: "docker.io/library/alpine"}, false},
		{"localhost:5000/team/app", ref.Endpoint{Transport: "docker", Location: "localhost:5000/team/app"}, false},
		{"127.0.0.1:5000/app:v1", ref.Endpoint{Transport: "docker", Location: "127.0.0.1:5000/app", Ref: "v1"}, true},
		{"reg.example/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			ref.Endpoint{Transport: "docker", Location: "reg.example/app", Ref: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}, true},
		{"oci:/srv/layout", ref.Endpoint{Transport: "oci", Location: "/srv/layout"}, false},
		{"oci:/srv/layout:v1", ref.Endpoint{Transport: "oci", Location: "/srv/layout", Ref: "v1"}, true},
		{"docker://oci:1.0", ref.Endpoint{Transport: "docker", Location: "docker.io/library/oci", Ref: "1.0"}, true},
		{"mytransport:/data/x:tag", ref.Endpoint{Transport: "mytransport", Location: "/data/x", Ref: "tag"}, true},
		// static: and docker-archive: name a repository without a tag.
		{"static:/srv/www:team/app", ref.Endpoint{Transport: "static", Location: "/srv/www:team/app"}, false},
		{"static:/srv/www:team/app:v1", ref.Endpoint{Transport: "static", Location: "/srv/www:team/app", Ref: "v1"}, true},
		{"docker-archive:/x.tar:reg:5000/app", ref.Endpoint{Transport: "docker-archive", Location: "/x.tar", Ref: "reg:5000/app"}, false},
		{"docker-archive:/x.tar:reg:5000/app:v1", ref.Endpoint{Transport: "docker-archive", Location: "/x.tar", Ref: "reg:5000/app:v1"}, true},
		{"docker-archive:/x.tar:@1", ref.Endpoint{Transport: "docker-archive", Location: "/x.tar", Ref: "@1"}, true},
	}
	for _, c := range cases {
		got, err := ParseEndpoint(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got.Endpoint != c.want || got.Image != c.image {
			t.Errorf("%s: %+v image=%v, want %+v image=%v", c.in, got.Endpoint, got.Image, c.want, c.image)
		}
	}
	if _, err := ParseEndpoint("bad//name"); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("invalid name: %v", err)
	}
}

func TestFilter(t *testing.T) {
	tags := []string{"1.0.0", "1.2", "1.20.1", "v1.2.5", "1.3.0-rc1", "2.0.0", "latest", "edge", "a9", "a10", "1.2-alpine"}
	cases := []struct {
		rules TagRules
		want  []string
	}{
		{TagRules{Allow: []string{`1\.2`}}, []string{"1.2"}},
		{TagRules{Allow: []string{`1\.2.*`}}, []string{"1.2", "1.2-alpine", "1.20.1"}},
		{TagRules{Allow: []string{`v?1\.2(\..*)?`}}, []string{"1.2", "v1.2.5"}},
		{TagRules{Deny: []string{`.*-.*`, "latest|edge", "a.*"}}, []string{"1.0.0", "1.2", "1.20.1", "2.0.0", "v1.2.5"}},
		{TagRules{Semver: ">=1.2 <2"}, []string{"1.2", "1.20.1", "v1.2.5"}},
		{TagRules{Semver: "~1.2"}, []string{"1.2", "v1.2.5"}},
		{TagRules{Semver: ">=1.3.0-0 <2"}, []string{"1.20.1", "1.3.0-rc1"}},
		// Pre-releases are versions too for newest (semver rules exclude them).
		{TagRules{Newest: 3}, []string{"1.20.1", "1.3.0-rc1", "2.0.0"}},
		{TagRules{Deny: []string{`[0-9v].*`}, Newest: 3}, []string{"a10", "edge", "latest"}},
		{TagRules{Allow: []string{`1\..*`}, Semver: "<1.10", Newest: 1}, []string{"1.2"}},
	}
	for _, c := range cases {
		f, err := NewFilter(&c.rules)
		if err != nil {
			t.Fatal(err)
		}
		got := f.Select(tags)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%+v: %v, want %v", c.rules, got, c.want)
		}
	}
	if f, err := NewFilter(&TagRules{}); f != nil || err != nil {
		t.Errorf("empty rules: %v %v", f, err)
	}
	for _, bad := range []TagRules{{Allow: []string{"("}}, {Semver: ">>1"}, {Newest: -1}} {
		if _, err := NewFilter(&bad); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

func TestSortNewestFirst(t *testing.T) {
	tags := []string{"latest", "1.9", "1.10", "v2.0.0-beta", "2.0.0", "edge9", "edge10", "0.1"}
	SortNewestFirst(tags)
	want := []string{"2.0.0", "v2.0.0-beta", "1.10", "1.9", "0.1", "latest", "edge10", "edge9"}
	if !reflect.DeepEqual(tags, want) {
		t.Errorf("%v, want %v", tags, want)
	}
}

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseStevedore(t *testing.T) {
	yml := `
version: 1
defaults:
  platforms: [linux/amd64, linux/arm64]
  referrers: true
  creds: ${U}:${P}
  target-tls-verify: false
  immutable: ['v[0-9]+']
  tags: {deny: ['.*-rc.*']}
registries:
  docker.io: {requests-per-second: 5, max-concurrent: 2}
sync:
  - source: docker.io/library/alpine
    target: registry.local/mirror/alpine
  - source: ghcr.io/acme/tool:1.4
    target: oci:/srv/tool
    all: true
    platforms: []
    referrers: false
    source-creds: other:pw$1
  - type: registry-prefix
    source: quay.io/acme/
    target: registry.local/acme
    repositories: [api, team/worker]
    tags: {allow: ['v.*'], newest: 1}
    jobs: 8
`
	res, err := Parse([]byte(yml), Options{LookupEnv: env(map[string]string{"U": "me", "P": "s3cr$t"}), DstOptions: map[string]string{"cert-dir": "/certs"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != FormatStevedore || len(res.Jobs) != 4 {
		t.Fatalf("%s, %d jobs", res.Format, len(res.Jobs))
	}
	if res.Limits["docker.io"] != (host.RegistryLimit{RequestsPerSecond: 5, MaxConcurrent: 2}) {
		t.Errorf("limits %+v", res.Limits)
	}
	a, tool, api, worker := res.Jobs[0], res.Jobs[1], res.Jobs[2], res.Jobs[3]
	if a.Kind != host.SyncRepository || a.Source.Location != "docker.io/library/alpine" || a.Target.Location != "registry.local/mirror/alpine" {
		t.Errorf("alpine job %+v", a)
	}
	if a.All || len(a.Platforms) != 2 || !a.Referrers {
		t.Errorf("alpine defaults: all=%v platforms=%v referrers=%v", a.All, a.Platforms, a.Referrers)
	}
	if a.SrcOptions["creds"] != "me:s3cr$t" || a.DstOptions["creds"] != "me:s3cr$t" || a.DstOptions["tls-verify"] != "false" || a.DstOptions["cert-dir"] != "/certs" {
		t.Errorf("alpine options %v / %v", a.SrcOptions, a.DstOptions)
	}
	if _, ok := a.SrcOptions["tls-verify"]; ok {
		t.Errorf("target-tls-verify leaked to the source")
	}
	if a.Immutable == nil || !a.Immutable("v3") || a.Immutable("v3.1") {
		t.Errorf("immutable rules must be anchored")
	}
	if a.Tags == nil || a.Tags.Match("1.0-rc1") || !a.Tags.Match("1.0") {
		t.Errorf("default deny filter")
	}
	if tool.Kind != host.SyncImage || tool.Source.Ref != "1.4" || tool.Target != (ref.Endpoint{Transport: "oci", Location: "/srv/tool"}) {
		t.Errorf("tool job %+v", tool)
	}
	if !tool.All || len(tool.Platforms) != 0 || tool.Referrers || tool.Tags != nil {
		t.Errorf("tool overrides: all=%v platforms=%v referrers=%v tags=%v", tool.All, tool.Platforms, tool.Referrers, tool.Tags)
	}
	if tool.SrcOptions["creds"] != "other:pw$1" || tool.DstOptions["creds"] != "me:s3cr$t" {
		t.Errorf("tool creds %v %v", tool.SrcOptions, tool.DstOptions)
	}
	if api.Source.Location != "quay.io/acme/api" || api.Target.Location != "registry.local/acme/api" ||
		worker.Source.Location != "quay.io/acme/team/worker" || worker.Target.Location != "registry.local/acme/team/worker" {
		t.Errorf("registry-prefix: %+v %+v", api, worker)
	}
	if api.Jobs != 8 || !reflect.DeepEqual(api.Tags.Select([]string{"v1", "v2", "latest", "v2-rc1"}), []string{"v2"}) {
		t.Errorf("registry-prefix entry settings: jobs %d", api.Jobs)
	}
	if !api.Tags.Match("v2-rc1") {
		t.Errorf("an entry's tags replace the defaults': the default deny must not apply")
	}
}

// Without repositories, a registry-prefix entry is one prefix job: the
// catalog names the repositories when the sync runs.
func TestParseRegistryPrefixCatalog(t *testing.T) {
	res, err := Parse([]byte(`sync:
  - {type: registry-prefix, source: '127.0.0.1:5000', target: 'docker://registry.local/mirror/', tags: {allow: ['v.*']}}
  - {type: registry-prefix, source: docker.io/acme, target: 'oci:/srv/mirror'}
`), Options{})
	if err != nil {
		t.Fatal(err)
	}
	whole, hub := res.Jobs[0], res.Jobs[1]
	if whole.Kind != host.SyncPrefix || whole.Source != (ref.Endpoint{Transport: "docker", Location: "127.0.0.1:5000"}) ||
		whole.Target != (ref.Endpoint{Transport: "docker", Location: "registry.local/mirror"}) || whole.Tags == nil || whole.Tags.Match("latest") {
		t.Errorf("whole registry: %+v", whole)
	}
	if hub.Kind != host.SyncPrefix || hub.Source.Location != "docker.io/acme" || hub.Target != (ref.Endpoint{Transport: "oci", Location: "/srv/mirror"}) {
		t.Errorf("namespace to layouts: %+v", hub)
	}
}

func TestParseErrors(t *testing.T) {
	cases := map[string]string{
		"unknown key":           "sync:\n  - {source: a, target: b, tag: {allow: [x]}}\n",
		"typo at top":           "sync: [{source: a, target: b}]\ndefault: {all: true}\n",
		"empty":                 "sync: []\n",
		"missing target":        "sync: [{source: a}]\n",
		"repository with tag":   "sync: [{source: 'a:1', target: b, type: repository}]\n",
		"repository target tag": "sync: [{source: a, target: 'b:1'}]\n",
		"image with tags":       "sync: [{source: 'a:1', target: b, tags: {allow: [x]}}]\n",
		"target tag and digest": "sync: [{source: 'a:1', target: 'b:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'}]\n",
		"prefix of an image":    "sync: [{source: 'reg.example/a:1', target: reg2.example, type: registry-prefix}]\n",
		"prefix not a registry": "sync: [{source: alpine, target: reg2.example, type: registry-prefix}]\n",
		"bad type":              "sync: [{source: a, target: b, type: everything}]\n",
		"bad regex":             "sync: [{source: a, target: b, tags: {deny: ['(']}}]\n",
		"bad immutable":         "sync: [{source: a, target: b, immutable: ['[']}]\n",
		"bad platform":          "sync: [{source: a, target: b, platforms: ['linux']}]\n",
		"all and platforms":     "sync: [{source: a, target: b, all: true, platforms: [linux/amd64]}]\n",
		"missing env":           "sync: [{source: a, target: b, creds: '${NOPE}:x'}]\n",
		"creds without user":    "sync: [{source: a, target: b, creds: ':x'}]\n",
		"version":               "version: 2\nsync: [{source: a, target: b}]\n",
		"negative limit":        "registries: {x: {burst: -1}}\nsync: [{source: a, target: b}]\n",
		"registry as a URL":     "registries: {'https://reg.example': {burst: 1}}\nsync: [{source: a, target: b}]\n",
		"registry with a path":  "registries: {reg.example/team: {burst: 1}}\nsync: [{source: a, target: b}]\n",
		"not yaml":              "sync: [\n",
	}
	for name, yml := range cases {
		_, err := Parse([]byte(yml), Options{LookupEnv: env(nil)})
		if !errors.Is(err, core.ErrInvalid) {
			t.Errorf("%s: want ErrInvalid, got %v", name, err)
		}
	}
	if _, err := Parse([]byte("sync: [{source: a, target: b}]\n"), Options{Target: "reg/x"}); err == nil {
		t.Errorf("a destination argument with stevedore's format must be refused")
	}
}

func TestParseSkopeo(t *testing.T) {
	yml := `
registry.example.com:
  images:
    busybox: []
    team/redis: ["1.0", "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"]
  images-by-tag-regex:
    nginx: 1\.13
  images-by-semver:
    alpine: ">= 3.12.0"
  credentials: {username: john, password: "pa${ss}"}
  tls-verify: false
  cert-dir: /home/john/certs
docker.io:
  images:
    library/ubuntu: ["24.04"]
`
	res, err := Parse([]byte(yml), Options{Target: "mirror.local/m", DstOptions: map[string]string{"tls-verify": "false"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != FormatSkopeo {
		t.Fatalf("format %s", res.Format)
	}
	type row struct{ kind, src, srcRef, dst string }
	var got []row
	for _, j := range res.Jobs {
		got = append(got, row{string(j.Kind), j.Source.Location, j.Source.Ref, j.Target.Location + ":" + j.Target.Ref})
	}
	want := []row{
		{"image", "docker.io/library/ubuntu", "24.04", "mirror.local/m/ubuntu:"},
		{"repository", "registry.example.com/busybox", "", "mirror.local/m/busybox:"},
		{"image", "registry.example.com/team/redis", "1.0", "mirror.local/m/redis:"},
		{"image", "registry.example.com/team/redis", "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "mirror.local/m/redis:"},
		{"repository", "registry.example.com/nginx", "", "mirror.local/m/nginx:"},
		{"repository", "registry.example.com/alpine", "", "mirror.local/m/alpine:"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("jobs\n%v\nwant\n%v", got, want)
	}
	busy := res.Jobs[1]
	if busy.SrcOptions["creds"] != "john:pa${ss}" || busy.SrcOptions["tls-verify"] != "false" || busy.SrcOptions["cert-dir"] != "/home/john/certs" {
		t.Errorf("skopeo registry settings: %v", busy.SrcOptions)
	}
	if busy.DstOptions["tls-verify"] != "false" || busy.DstOptions["creds"] != "" {
		t.Errorf("destination options: %v", busy.DstOptions)
	}
	if ub := res.Jobs[0]; ub.SrcOptions["creds"] != "" {
		t.Errorf("credentials of one registry leaked to another")
	}
	// skopeo's regex is not anchored.
	if got := res.Jobs[4].Tags.Select([]string{"1.13.1", "v1.13-perl", "1.14", "1x13"}); !reflect.DeepEqual(got, []string{"1.13.1", "v1.13-perl"}) {
		t.Errorf("images-by-tag-regex selected %v", got)
	}
	if got := res.Jobs[5].Tags.Select([]string{"3.11", "3.12.0", "3.20", "edge", "3.21.0-rc1"}); !reflect.DeepEqual(got, []string{"3.12.0", "3.20"}) {
		t.Errorf("images-by-semver selected %v", got)
	}

	// --scoped keeps the full source name; an OCI directory prefix works too.
	res, err = Parse([]byte(yml), Options{Target: "oci:/srv/mirror", Scoped: true})
	if err != nil {
		t.Fatal(err)
	}
	if j := res.Jobs[0]; j.Target != (ref.Endpoint{Transport: "oci", Location: "/srv/mirror/docker.io/library/ubuntu"}) {
		t.Errorf("scoped oci target %+v", j.Target)
	}
	res, err = Parse([]byte(yml), Options{Target: "docker://mirror.local", Scoped: true})
	if err != nil {
		t.Fatal(err)
	}
	if j := res.Jobs[2]; j.Target.Location != "mirror.local/registry.example.com/team/redis" {
		t.Errorf("scoped docker target %+v", j.Target)
	}

	if _, err := Parse([]byte(yml), Options{}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("skopeo format without a destination: %v", err)
	}
	if _, err := Parse([]byte("reg.example:\n  imagez: {a: []}\n"), Options{Target: "m"}); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("unknown skopeo key: %v", err)
	}
}

// TestSchemaMatchesStructs keeps docs/sync.schema.json and the decoder in
// step: every key the decoder accepts is in the schema and the other way
// round.
func TestSchemaMatchesStructs(t *testing.T) {
	raw, err := os.ReadFile("../../docs/sync.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties map[string]json.RawMessage `json:"properties"`
		Defs       map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]json.RawMessage) []string {
		var out []string
		for k := range m {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}
	check := func(what string, got []string, v any) {
		t.Helper()
		want := yamlKeys(reflect.TypeOf(v))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: schema has %v, decoder reads %v", what, got, want)
		}
	}
	check("top level", keys(schema.Properties), File{})
	check("settings", keys(schema.Defs["settings"].Properties), Settings{})
	entry := append(keys(schema.Defs["entry"].Properties), keys(schema.Defs["settings"].Properties)...)
	sort.Strings(entry)
	check("entry", entry, Entry{})
	check("tags", keys(schema.Defs["tags"].Properties), TagRules{})
	check("limit", keys(schema.Defs["limit"].Properties), host.RegistryLimit{})
}

func yamlKeys(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			out = append(out, yamlKeys(f.Type)...)
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// TestDocExamples parses the YAML examples of docs/sync.md.
func TestDocExamples(t *testing.T) {
	raw, err := os.ReadFile("../../docs/sync.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(raw), -1)
	if len(blocks) != 2 {
		t.Fatalf("%d yaml blocks in docs/sync.md, want 2", len(blocks))
	}
	ours, err := Parse([]byte(blocks[0][1]), Options{LookupEnv: env(map[string]string{"HUB_USER": "u", "HUB_TOKEN": "t"})})
	if err != nil {
		t.Fatalf("stevedore example: %v", err)
	}
	if ours.Format != FormatStevedore || len(ours.Jobs) != 7 || ours.Jobs[5].Kind != host.SyncPrefix {
		t.Errorf("stevedore example: %s, %d jobs", ours.Format, len(ours.Jobs))
	}
	sk, err := Parse([]byte(blocks[1][1]), Options{Target: "registry.local/mirror"})
	if err != nil {
		t.Fatalf("skopeo example: %v", err)
	}
	if sk.Format != FormatSkopeo || len(sk.Jobs) != 6 {
		t.Errorf("skopeo example: %s, %d jobs", sk.Format, len(sk.Jobs))
	}
}

// Decoding errors say what the file got wrong in the file's words: yaml.v3
// named Go types ("field tagz not found in type syncspec.Entry", "cannot
// unmarshal !!str `three` into int").
func TestParseErrorsNameNoGoTypes(t *testing.T) {
	for _, tc := range []struct{ yml, want string }{
		{"sync:\n  - {source: a, target: b, tagz: {allow: [x]}}\n", `line 2: unknown key "tagz" in a sync entry`},
		{"defaults: {tagz: 1}\nsync: [{source: a, target: b}]\n", `line 1: unknown key "tagz" in defaults`},
		{"sync: [{source: a, target: b, tags: {newest: three}}]\n", "line 1: want a number, got a string `three`"},
		{"sync: [{source: a, target: b, all: maybe}]\n", "line 1: want true or false, got a string `maybe`"},
		{"sync: {source: a}\n", "line 1: want a list, got a mapping"},
		{"registries: {x: {burst: [1]}}\nsync: [{source: a, target: b}]\n", "line 1: want a number, got a list"},
	} {
		_, err := Parse([]byte(tc.yml), Options{LookupEnv: env(nil)})
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "syncspec.") || strings.Contains(err.Error(), "!!") {
			t.Errorf("%q: %v, want it to say %q", tc.yml, err, tc.want)
		}
	}
	_, err := Parse([]byte("reg.example:\n  imagez: {app: []}\n"), Options{Target: "mirror.example"})
	if want := `line 2: unknown key "imagez" in a registry`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("skopeo format: %v, want it to say %q", err, want)
	}
}

// A regex is checked as the file writes it, not as anchored: "a)|(b" is no
// regex, but anchored it compiled as ^(?:a)|(b)$, matching any tag that
// starts with a; and errors quoted the anchored form.
func TestRegexCheckedAsWritten(t *testing.T) {
	for _, expr := range []string{"a)|(b", "v(1"} {
		_, err := NewFilter(&TagRules{Deny: []string{expr}})
		if !errors.Is(err, core.ErrInvalid) || strings.Contains(err.Error(), "(?:") {
			t.Errorf("deny %q: %v, want an invalid regex error quoting it as written", expr, err)
		}
		if _, err := Immutable([]string{expr}); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("immutable %q: %v, want invalid", expr, err)
		}
	}
}

// A skopeo-format registry written as a URL said "name a repository; tags go
// in the list" of its first image.
func TestSkopeoRegistryURLRefused(t *testing.T) {
	_, err := Parse([]byte("https://reg.example:5000:\n  images:\n    app: []\n"), Options{Target: "mirror.example"})
	if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "without a scheme") {
		t.Fatalf("registry as a URL: %v", err)
	}
}

// An auth file the sync file names for a side wins over credentials given
// on the command line, which are defaults; creds in the file win over both.
func TestFileAuthfileOverridesCommandLineCreds(t *testing.T) {
	cli := map[string]string{"creds": "cli:pw", "no-creds": "true", "registry-token": "tok"}
	yml := `sync:
  - {source: a.example/r, target: b.example/r, target-authfile: /etc/auth.json}
  - {source: a.example/s, target: b.example/s, target-authfile: /etc/auth.json, target-creds: 'file:pw'}
  - {source: a.example/t, target: b.example/t}
`
	res, err := Parse([]byte(yml), Options{SrcOptions: cli, DstOptions: cli})
	if err != nil {
		t.Fatal(err)
	}
	j := res.Jobs
	if d := j[0].DstOptions; d["authfile"] != "/etc/auth.json" || d["creds"] != "" || d["no-creds"] != "" || d["registry-token"] != "" {
		t.Errorf("file authfile: target options %v", d)
	}
	if j[0].SrcOptions["creds"] != "cli:pw" {
		t.Errorf("the other side keeps the command line's: %v", j[0].SrcOptions)
	}
	if d := j[1].DstOptions; d["creds"] != "file:pw" {
		t.Errorf("file creds and authfile: target options %v", d)
	}
	if d := j[2].DstOptions; d["creds"] != "cli:pw" {
		t.Errorf("nothing in the file: target options %v", d)
	}
}
