package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/stevedore-oci/stevedore/server/storage"
)

// paginate applies the spec's n and last parameters to a sorted list and
// sets the Link header when more entries follow.
func paginate(q *request, all []string, base string) ([]string, error) {
	qv := q.r.URL.Query()
	list := all
	if last := qv.Get("last"); last != "" {
		i := sort.SearchStrings(list, last)
		if i < len(list) && list[i] == last {
			i++
		}
		list = list[i:]
	}
	if ns := qv.Get("n"); ns != "" {
		n, err := strconv.Atoi(ns)
		if err != nil || n < 0 {
			return nil, newErr(http.StatusBadRequest, codeUnsupported, fmt.Errorf("query parameter n=%q must be a non-negative integer", ns))
		}
		if n < len(list) {
			list = list[:n]
			if n > 0 {
				v := url.Values{}
				v.Set("n", ns)
				v.Set("last", list[n-1])
				q.w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, base, v.Encode()))
			}
		}
	}
	if list == nil {
		list = []string{}
	}
	return list, nil
}

func writeJSON(q *request, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		q.fail(err)
		return
	}
	h := q.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	q.w.WriteHeader(http.StatusOK)
	if q.r.Method != http.MethodHead {
		_, _ = q.w.Write(b)
	}
}

// tags serves GET /v2/<name>/tags/list.
func (s *Server) tags(q *request) {
	if q.r.Method != http.MethodGet && q.r.Method != http.MethodHead {
		methodNotAllowed(q)
		return
	}
	all, err := s.store.Tags(q.rt.name)
	if err != nil {
		q.fail(err)
		return
	}
	list, err := paginate(q, all, "/v2/"+q.rt.name+"/tags/list")
	if err != nil {
		q.fail(err)
		return
	}
	writeJSON(q, struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{q.rt.name, list})
}

// catalog serves GET /v2/_catalog, listing only repositories the caller
// may pull.
func (s *Server) catalog(q *request) {
	if q.r.Method != http.MethodGet && q.r.Method != http.MethodHead {
		methodNotAllowed(q)
		return
	}
	all, err := s.store.Repositories(q.r.Context())
	if err != nil {
		q.fail(err)
		return
	}
	if !s.auth.open() {
		vis := make([]string, 0, len(all))
		for _, n := range all {
			if s.auth.check2(q.r, q.id, n, ActionPull) == nil {
				vis = append(vis, n)
			}
		}
		all = vis
	}
	list, err := paginate(q, all, "/v2/_catalog")
	if err != nil {
		q.fail(err)
		return
	}
	writeJSON(q, struct {
		Repositories []string `json:"repositories"`
	}{list})
}

// referrers serves GET /v2/<name>/referrers/<digest>.
func (s *Server) referrers(q *request) {
	if q.r.Method != http.MethodGet && q.r.Method != http.MethodHead {
		methodNotAllowed(q)
		return
	}
	d, err := storage.ParseDigest(q.rt.ref)
	if err != nil {
		q.fail(digestErr(err))
		return
	}
	ds, err := s.store.Referrers(q.rt.name, d)
	if err != nil {
		q.fail(err)
		return
	}
	qv := q.r.URL.Query()
	at := qv.Get("artifactType")
	// A copy: ds is the store's, shared. Sorted by digest, which makes
	// pages stable (a page starts after the last digest of the one before).
	out := make([]ocispec.Descriptor, 0, len(ds))
	for _, x := range ds {
		if at == "" || x.ArtifactType == at {
			out = append(out, x)
		}
	}
	if at != "" {
		q.w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	slices.SortFunc(out, func(a, b ocispec.Descriptor) int { return strings.Compare(a.Digest.String(), b.Digest.String()) })
	if last := qv.Get("last"); last != "" {
		i, _ := slices.BinarySearchFunc(out, last, func(x ocispec.Descriptor, l string) int { return strings.Compare(x.Digest.String(), l) })
		if i < len(out) && out[i].Digest.String() == last {
			i++
		}
		out = out[i:]
	}
	page := s.opts.ReferrersPageSize
	if page <= 0 {
		page = DefaultReferrersPageSize
	}
	if len(out) > page {
		out = out[:page]
		v := url.Values{}
		v.Set("last", out[page-1].Digest.String())
		if at != "" {
			v.Set("artifactType", at)
		}
		q.w.Header().Set("Link", fmt.Sprintf(`</v2/%s/referrers/%s?%s>; rel="next"`, q.rt.name, d, v.Encode()))
	}
	b, err := json.Marshal(descriptorsIndex(out))
	if err != nil {
		q.fail(err)
		return
	}
	h := q.w.Header()
	h.Set("Content-Type", "application/vnd.oci.image.index.v1+json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	q.w.WriteHeader(http.StatusOK)
	if q.r.Method != http.MethodHead {
		_, _ = q.w.Write(b)
	}
}
