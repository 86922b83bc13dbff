package platform

import (
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestParseNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"linux/amd64", "linux/amd64"},
		{"linux/x86_64", "linux/amd64"},
		{"Linux/AARCH64", "linux/arm64"},
		{"linux/arm64/v8", "linux/arm64"},
		{"linux/arm", "linux/arm/v7"},
		{"linux/armhf", "linux/arm/v7"},
		{"linux/arm/v6", "linux/arm/v6"},
		{"linux/i686", "linux/386"},
		{"windows/amd64", "windows/amd64"},
	}
	for _, tt := range tests {
		p, err := Parse(tt.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.in, err)
		}
		if got := Format(p); got != tt.want {
			t.Errorf("Parse(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"", "linux", "linux/", "/amd64", "a/b/c/d", "linux/arm/"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

func TestMatchSelect(t *testing.T) {
	descs := []ocispec.Descriptor{
		{Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		{Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
		{Platform: &ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{Platform: &ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}},
		{}, // attestation-like entry without platform
	}
	tests := []struct {
		want []string
		idx  []int
	}{
		{[]string{"linux/amd64"}, []int{0}},
		{[]string{"linux/aarch64"}, []int{1}},
		{[]string{"linux/arm64/v8"}, []int{1}},
		{[]string{"linux/arm"}, []int{2}},
		{[]string{"linux/arm/v6"}, []int{3}},
		{[]string{"linux/amd64", "linux/arm64"}, []int{0, 1}},
		{[]string{"windows/amd64"}, nil},
	}
	for _, tt := range tests {
		var want []ocispec.Platform
		for _, s := range tt.want {
			p, _ := Parse(s)
			want = append(want, p)
		}
		got := Select(descs, want)
		if len(got) != len(tt.idx) {
			t.Errorf("Select(%v) = %v, want %v", tt.want, got, tt.idx)
			continue
		}
		for i := range got {
			if got[i] != tt.idx[i] {
				t.Errorf("Select(%v) = %v, want %v", tt.want, got, tt.idx)
			}
		}
	}
	if d := Default(); d.OS == "" || d.Architecture == "" {
		t.Fatalf("Default() = %+v", d)
	}
}
