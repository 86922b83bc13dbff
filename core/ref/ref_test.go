package ref

import (
	"errors"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
)

func TestParse(t *testing.T) {
	const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		in   string
		want Endpoint
	}{
		{"docker://alpine", Endpoint{Transport: Docker, Location: "docker.io/library/alpine", Ref: "latest"}},
		{"docker://alpine:3.20", Endpoint{Transport: Docker, Location: "docker.io/library/alpine", Ref: "3.20"}},
		{"docker://ghcr.io/a/b@" + dg, Endpoint{Transport: Docker, Location: "ghcr.io/a/b", Ref: dg}},
		{"docker://127.0.0.1:5000/x/y:v1", Endpoint{Transport: Docker, Location: "127.0.0.1:5000/x/y", Ref: "v1"}},
		{"docker://localhost:5000/x", Endpoint{Transport: Docker, Location: "localhost:5000/x", Ref: "latest"}},
		{"docker://ghcr.io/a/b:t@" + dg, Endpoint{Transport: Docker, Location: "ghcr.io/a/b", Ref: dg, TagWithDigest: "t"}},
		{"oci:/tmp/lay", Endpoint{Transport: OCI, Location: "/tmp/lay", Ref: ""}},
		{"oci:/tmp/lay:v1", Endpoint{Transport: OCI, Location: "/tmp/lay", Ref: "v1"}},
		{"oci:rel/dir:name:with:colons", Endpoint{Transport: OCI, Location: "rel/dir", Ref: "name:with:colons"}},
		{"oci:/l:docker.io/library/alpine:3.20", Endpoint{Transport: OCI, Location: "/l", Ref: "docker.io/library/alpine:3.20"}},
		{"oci:/l:" + dg, Endpoint{Transport: OCI, Location: "/l", Ref: dg}},
		{"oci-archive:/a.tar:latest", Endpoint{Transport: OCIArchive, Location: "/a.tar", Ref: "latest"}},
		{"docker-archive:/a.tar", Endpoint{Transport: DockerArchive, Location: "/a.tar", Ref: ""}},
		{"docker-archive:/a.tar:busybox", Endpoint{Transport: DockerArchive, Location: "/a.tar", Ref: "busybox:latest"}},
		{"docker-archive:/a.tar:quay.io/x/y:1", Endpoint{Transport: DockerArchive, Location: "/a.tar", Ref: "quay.io/x/y:1"}},
		{"docker-archive:/a.tar:@2", Endpoint{Transport: DockerArchive, Location: "/a.tar", Ref: "@2"}},
		{"dir:/tmp/a:b", Endpoint{Transport: Dir, Location: "/tmp/a:b", Ref: ""}},
		{"static:/srv/www", Endpoint{Transport: Static, Location: "/srv/www", Ref: ""}},
		{"static:/srv/www:lib/app:1.0", Endpoint{Transport: Static, Location: "/srv/www:lib/app", Ref: "1.0"}},
		{"static:/srv/www:app", Endpoint{Transport: Static, Location: "/srv/www:app", Ref: "latest"}},
		{"static:/srv/www:app@" + dg, Endpoint{Transport: Static, Location: "/srv/www:app", Ref: dg}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			again, err := Parse(got.String())
			if err != nil || again != got {
				t.Fatalf("round trip %q -> %q -> %+v, %v", tt.in, got.String(), again, err)
			}
		})
	}
}

// A reference naming both a tag and a digest reads the digest; writing or
// deleting through it is refused instead of the tag dropped.
func TestUnambiguous(t *testing.T) {
	const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	both, err := Parse("docker://ghcr.io/a/b:t@" + dg)
	if err != nil {
		t.Fatal(err)
	}
	err = both.Unambiguous("destination")
	if !errors.Is(err, core.ErrInvalid) || err.Error() != `destination docker://ghcr.io/a/b:t@`+dg+` names both tag "t" and a digest: name one (skopeo refuses it too): invalid` {
		t.Fatalf("Unambiguous = %v", err)
	}
	if other := both.WithRef("v2"); other.Unambiguous("destination") != nil || other.String() != "docker://ghcr.io/a/b:v2" {
		t.Errorf("WithRef kept the tag: %+v", other)
	}
	for _, in := range []string{"docker://ghcr.io/a/b:t", "docker://ghcr.io/a/b@" + dg, "oci:/x:t"} {
		ep, err := Parse(in)
		if err != nil || ep.Unambiguous("destination") != nil {
			t.Errorf("%s: %v %v", in, err, ep.Unambiguous("destination"))
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"", "alpine", "docker:alpine", "docker://", "docker://foo/UPPER", "oci:", "oci::tag",
		"dir:", "docker-archive:/a.tar:@x", "docker-archive:/a.tar:@", "static:/s:Bad_Name:1",
		"static:/s:app:bad tag", "static:/s:app@sha256:zz",
		// Names an OCI layout cannot record (skopeo refuses them too).
		"oci:/l:ü", "oci:/l:-lead", "oci:/l:.lead", "oci:/l:a b", "oci-archive:/a.tar:_x",
	} {
		_, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) succeeded, want error", in)
			continue
		}
		if !errors.Is(err, core.ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", in, err)
		}
	}
	_, err := Parse("zip:/a.zip:v1")
	if !errors.Is(err, ErrUnknownTransport) {
		t.Fatalf("unknown transport: %v", err)
	}
	ep, err := ParseGeneric("zip:/a.zip:v1")
	if err != nil || ep != (Endpoint{Transport: "zip", Location: "/a.zip", Ref: "v1"}) {
		t.Fatalf("ParseGeneric = %+v, %v", ep, err)
	}
	if _, err := ParseGeneric("Bad!:x"); err == nil {
		t.Fatal("ParseGeneric accepted a bad transport name")
	}
}

func TestDockerPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5000":      "127.0.0.1:5000",
		"localhost":           "localhost",
		"ghcr.io":             "ghcr.io",
		"quay.io/acme":        "quay.io/acme",
		"docker.io/library":   "docker.io/library",
		"reg.example:5000/a/": "",
		"acme/team":           "docker.io/acme/team",
	} {
		got, err := DockerPrefix(in)
		if want == "" {
			if !errors.Is(err, core.ErrInvalid) {
				t.Errorf("DockerPrefix(%q) = %q, %v; want invalid", in, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("DockerPrefix(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"alpine", "quay.io/acme:1", "quay.io/acme@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", ""} {
		if _, err := DockerPrefix(in); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("DockerPrefix(%q): %v, want invalid", in, err)
		}
	}
}

func TestDockerNamesImage(t *testing.T) {
	hex64 := strings.Repeat("ab", 32)
	for s, want := range map[string]bool{
		"docker://127.0.0.1:5000/app":            false,
		"docker://alpine":                        false,
		"docker://alpine:3":                      true,
		"docker://127.0.0.1:5000":                true, // docker.io/library/127.0.0.1, tag 5000
		"docker://r.example/app@sha256:" + hex64: true,
	} {
		if got := DockerNamesImage(s); got != want {
			t.Errorf("%s: %v, want %v", s, got, want)
		}
	}
}

// A malformed docker reference names the part that is wrong: the reference
// package says "invalid reference format" of all of them, and a port no
// address has was taken, to fail at the first dial after blobs were read.
func TestParseDockerSaysWhatIsWrong(t *testing.T) {
	for in, want := range map[string]string{
		"docker://localhost:5000/x:bad tag":                     `tag "bad tag"`,
		"docker://localhost:5000/x:-lead":                       `tag "-lead"`,
		"docker://localhost:5000/x@sha256:abc":                  `digest "sha256:abc"`,
		"docker://localhost:5000/x@md5:abc":                     `digest "md5:abc"`,
		"docker://127.0.0.1:abc/x:y":                            `registry "127.0.0.1:abc": the port must be a number`,
		"docker://127.0.0.1:99999/x:y":                          `port 99999 is not between 1 and 65535`,
		"docker://127.0.0.1:0/x":                                `port 0 is not between 1 and 65535`,
		"docker://localhost:5000/a:b:c":                         `repository "a:b"`,
		"docker://localhost:5000/a//b":                          `repository "a//b"`,
		"docker://localhost:5000/x:" + strings.Repeat("a", 129): `tag "aaaa`,
	} {
		_, err := Parse(in)
		if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an invalid error saying %s", in, err, want)
		}
	}
	for _, ok := range []string{"docker://[::1]:5000/x:y", "docker://localhost:65535/x", "docker://127.0.0.1:1/a/b:v1"} {
		if _, err := Parse(ok); err != nil {
			t.Errorf("Parse(%q): %v", ok, err)
		}
	}
}

// A prefix naming a tag said only "invalid reference format".
func TestDockerPrefixWithTag(t *testing.T) {
	for _, in := range []string{"127.0.0.1:5000/app:v1", "quay.io/acme/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"} {
		_, err := DockerPrefix(in)
		if !errors.Is(err, core.ErrInvalid) || !strings.Contains(err.Error(), "drop the tag or digest") {
			t.Errorf("DockerPrefix(%q) = %v", in, err)
		}
	}
}

// A bad image name of a layout is said once, without the sentinel doubled
// ("...: invalid: invalid").
func TestParseBadLayoutNameMessage(t *testing.T) {
	_, err := Parse("oci:/l:-bad")
	if err == nil || !errors.Is(err, core.ErrInvalid) || strings.Count(err.Error(), "invalid") != 2 {
		t.Fatalf("Parse(oci:/l:-bad) = %v, want one \"invalid endpoint\" and one \": invalid\"", err)
	}
}
