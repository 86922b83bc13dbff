package server_test

import (
	"context"
	"encoding/json"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/stevedore-oci/stevedore/server"
)

// A subject with more referrers than a page holds is listed in pages
// linked by Link headers, each page sorted and none repeated, the
// artifactType filter kept from page to page; oras-go's client (which the
// docker transport uses) follows them to the whole list.
func TestReferrersPages(t *testing.T) {
	ts, _ := testServer(t, server.Options{AnonymousWrite: true, ReferrersPageSize: 2})
	subject := randomImage(t, "amd64", 1)
	pushImage(t, ts.URL, "a", "v1", subject)
	empty := newBlob(ocispec.MediaTypeEmptyJSON, []byte("{}"))
	pushBlob(t, ts.URL, "a", empty)
	all := map[string][]string{} // artifactType -> digests
	for i, at := range []string{"application/x.sig", "application/x.sbom", "application/x.sig", "application/x.sig", "application/x.sbom"} {
		raw, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
			ArtifactType: at, Config: empty.desc, Layers: []ocispec.Descriptor{empty.desc}, Subject: &subject.manifest.desc,
			Annotations: map[string]string{"n": string(rune('a' + i))}})
		r := newBlob(ocispec.MediaTypeImageManifest, raw)
		pushManifest(t, ts.URL, "a", r.desc.Digest.String(), r)
		all[at] = append(all[at], r.desc.Digest.String())
		all[""] = append(all[""], r.desc.Digest.String())
	}
	link := regexp.MustCompile(`^<([^>]+)>; rel="next"$`)
	for _, at := range []string{"", "application/x.sig", "application/x.sbom"} {
		next := "/v2/a/referrers/" + subject.manifest.desc.Digest.String()
		if at != "" {
			next += "?artifactType=" + url.QueryEscape(at)
		}
		var got []string
		for pages := 0; next != ""; pages++ {
			if pages > 5 {
				t.Fatalf("artifactType %q: more pages than referrers", at)
			}
			st, h, body := do(t, "GET", ts.URL+next, nil)
			if st != 200 {
				t.Fatalf("GET %s: %d %s", next, st, body)
			}
			var idx ocispec.Index
			if err := json.Unmarshal(body, &idx); err != nil {
				t.Fatal(err)
			}
			if len(idx.Manifests) > 2 || len(idx.Manifests) == 0 {
				t.Fatalf("GET %s: %d descriptors in a page of 2", next, len(idx.Manifests))
			}
			for _, m := range idx.Manifests {
				if at != "" && m.ArtifactType != at {
					t.Fatalf("GET %s: artifactType %q in a page filtered by %q", next, m.ArtifactType, at)
				}
				got = append(got, m.Digest.String())
			}
			page := next
			next = ""
			if l := h.Get("Link"); l != "" {
				m := link.FindStringSubmatch(l)
				if m == nil {
					t.Fatalf("GET %s: Link %q", page, l)
				}
				next = m[1]
			}
		}
		want := slices.Clone(all[at])
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("artifactType %q: pages listed %v, want %v (sorted, each once)", at, got, want)
		}
	}

	repo, err := remote.NewRepository(strings.TrimPrefix(ts.URL, "http://") + "/a")
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	var got []string
	pages := 0
	err = repo.Referrers(context.Background(), subject.manifest.desc, "", func(page []ocispec.Descriptor) error {
		pages++
		for _, d := range page {
			got = append(got, d.Digest.String())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := slices.Clone(all[""])
	slices.Sort(want)
	if !slices.Equal(got, want) || pages != 3 {
		t.Fatalf("oras-go listed %v in %d pages, want %v in 3", got, pages, want)
	}
}
