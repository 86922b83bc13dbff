package ref

import (
	"errors"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
)

func TestParse(t *testing.T) {
	const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		in   string
		want Endpoint
	}{
		{"docker://alpine", Endpoint{Docker, "docker.io/library/alpine", "latest"}},
		{"docker://alpine:3.20", Endpoint{Docker, "docker.io/library/alpine", "3.20"}},
		{"docker://ghcr.io/a/b@" + dg, Endpoint{Docker, "ghcr.io/a/b", dg}},
		{"docker://127.0.0.1:5000/x/y:v1", Endpoint{Docker, "127.0.0.1:5000/x/y", "v1"}},
		{"docker://localhost:5000/x", Endpoint{Docker, "localhost:5000/x", "latest"}},
		{"docker://ghcr.io/a/b:t@" + dg, Endpoint{Docker, "ghcr.io/a/b", dg}},
		{"oci:/tmp/lay", Endpoint{OCI, "/tmp/lay", ""}},
		{"oci:/tmp/lay:v1", Endpoint{OCI, "/tmp/lay", "v1"}},
		{"oci:rel/dir:name:with:colons", Endpoint{OCI, "rel/dir", "name:with:colons"}},
		{"oci-archive:/a.tar:latest", Endpoint{OCIArchive, "/a.tar", "latest"}},
		{"docker-archive:/a.tar", Endpoint{DockerArchive, "/a.tar", ""}},
		{"docker-archive:/a.tar:busybox", Endpoint{DockerArchive, "/a.tar", "busybox:latest"}},
		{"docker-archive:/a.tar:quay.io/x/y:1", Endpoint{DockerArchive, "/a.tar", "quay.io/x/y:1"}},
		{"docker-archive:/a.tar:@2", Endpoint{DockerArchive, "/a.tar", "@2"}},
		{"dir:/tmp/a:b", Endpoint{Dir, "/tmp/a:b", ""}},
		{"static:/srv/www", Endpoint{Static, "/srv/www", ""}},
		{"static:/srv/www:lib/app:1.0", Endpoint{Static, "/srv/www:lib/app", "1.0"}},
		{"static:/srv/www:app", Endpoint{Static, "/srv/www:app", "latest"}},
		{"static:/srv/www:app@" + dg, Endpoint{Static, "/srv/www:app", dg}},
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

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"", "alpine", "docker:alpine", "docker://", "docker://foo/UPPER", "oci:", "oci::tag",
		"dir:", "docker-archive:/a.tar:@x", "docker-archive:/a.tar:@", "static:/s:Bad_Name:1",
		"static:/s:app:bad tag", "static:/s:app@sha256:zz",
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
	if err != nil || ep != (Endpoint{"zip", "/a.zip", "v1"}) {
		t.Fatalf("ParseGeneric = %+v, %v", ep, err)
	}
	if _, err := ParseGeneric("Bad!:x"); err == nil {
		t.Fatal("ParseGeneric accepted a bad transport name")
	}
}
