package host

import (
	"encoding/json"
	"testing"
)

// A subset of an index keeps the original's bytes: key order, spacing,
// escapes and the kept entries as they were (re-encoding would sort keys,
// compact the layout and escape & and < as \u0026 and \u003c).
func TestFilterIndexKeepsBytes(t *testing.T) {
	raw := `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:aaaa","size":1,"platform":{"architecture":"amd64","os":"linux"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:bbbb", "size": 2, "annotations": {"a&b": "<c>"}},
    {"digest":"sha256:cccc","size":3}
  ],
  "annotations": {"z": "1", "a": "x&y<z>"}
}`
	cases := []struct {
		sel  []int
		want string
	}{
		{[]int{0, 1, 2}, raw},
		{[]int{1, 2}, `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:bbbb", "size": 2, "annotations": {"a&b": "<c>"}},
    {"digest":"sha256:cccc","size":3}
  ],
  "annotations": {"z": "1", "a": "x&y<z>"}
}`},
		{[]int{2}, `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {"digest":"sha256:cccc","size":3}
  ],
  "annotations": {"z": "1", "a": "x&y<z>"}
}`},
		{nil, `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    
  ],
  "annotations": {"z": "1", "a": "x&y<z>"}
}`},
	}
	for _, c := range cases {
		got, err := filterIndex([]byte(raw), c.sel)
		if err != nil {
			t.Fatalf("%v: %v", c.sel, err)
		}
		if string(got) != c.want {
			t.Errorf("%v:\n%s\nwant\n%s", c.sel, got, c.want)
		}
		if !json.Valid(got) {
			t.Errorf("%v: invalid JSON %s", c.sel, got)
		}
	}
	for _, bad := range []string{`[]`, `{"manifests": {}}`, `{"schemaVersion": 2}`, `{"manifests": [1,`} {
		if _, err := filterIndex([]byte(bad), []int{0}); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	if _, err := filterIndex([]byte(raw), []int{3}); err == nil {
		t.Error("entry 3 of 3: no error")
	}
}
