package server

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/server/storage"
)

// manifest serves /v2/<name>/manifests/<reference>.
func (s *Server) manifest(q *request) {
	name, ref := q.rt.name, q.rt.ref
	var d digest.Digest
	isDigest := strings.Contains(ref, ":")
	if isDigest {
		var err error
		if d, err = storage.ParseDigest(ref); err != nil {
			q.fail(digestErr(err))
			return
		}
	} else if err := storage.ValidateTag(ref); err != nil {
		if q.r.Method == http.MethodPut {
			q.fail(newErr(http.StatusBadRequest, codeManifestInvalid, err))
		} else {
			q.fail(newErr(http.StatusNotFound, codeManifestUnknown, err))
		}
		return
	}
	switch q.r.Method {
	case http.MethodGet, http.MethodHead:
		desc, err := s.store.Resolve(name, ref)
		if err != nil {
			q.fail(err)
			return
		}
		h := q.w.Header()
		h.Set("Content-Type", desc.MediaType)
		h.Set("Docker-Content-Digest", desc.Digest.String())
		h.Set("Etag", `"`+desc.Digest.String()+`"`)
		h.Set("Content-Length", strconv.FormatInt(desc.Size, 10))
		if q.r.Method == http.MethodHead {
			if isDigest {
				// A pusher checking a child manifest before skipping its
				// PUT (crane does): keep it from gc's sweep of old
				// untagged manifests, as a blob HEAD does for blobs.
				s.store.TouchBlob(name, desc.Digest)
			}
			q.w.WriteHeader(http.StatusOK)
			return
		}
		b, err := s.store.ReadManifest(name, desc)
		if err != nil {
			q.fail(err)
			return
		}
		q.w.WriteHeader(http.StatusOK)
		_, _ = q.w.Write(b)
	case http.MethodPut:
		s.putManifest(q, d)
	case http.MethodDelete:
		var err error
		if isDigest {
			err = s.store.DeleteManifest(q.r.Context(), name, d)
		} else {
			err = s.store.DeleteTag(q.r.Context(), name, ref)
		}
		if err != nil {
			q.fail(err)
			return
		}
		q.w.Header().Set("Content-Length", "0")
		q.w.WriteHeader(http.StatusAccepted)
	default:
		methodNotAllowed(q)
	}
}

func (s *Server) putManifest(q *request, refDigest digest.Digest) {
	name := q.rt.name
	if q.r.ContentLength > content.MaxManifestSize {
		q.fail(newErr(http.StatusRequestEntityTooLarge, codeSizeInvalid, fmt.Errorf("manifest is %d bytes, over the %d byte limit: %w", q.r.ContentLength, content.MaxManifestSize, core.ErrTooLarge)))
		return
	}
	raw, err := io.ReadAll(io.LimitReader(q.r.Body, content.MaxManifestSize+1))
	if err != nil {
		q.fail(newErr(http.StatusBadRequest, codeManifestInvalid, fmt.Errorf("reading manifest: %w", err)))
		return
	}
	if len(raw) > content.MaxManifestSize {
		q.fail(newErr(http.StatusRequestEntityTooLarge, codeSizeInvalid, fmt.Errorf("manifest is over the %d byte limit: %w", content.MaxManifestSize, core.ErrTooLarge)))
		return
	}
	ct, _, _ := mime.ParseMediaType(q.r.Header.Get("Content-Type"))
	if !manifest.IsManifest(ct) && !manifest.IsSchema1(ct) {
		ct = ""
	}
	m, err := manifest.Parse(raw, ct)
	if err != nil {
		q.fail(newErr(http.StatusBadRequest, codeManifestInvalid, err))
		return
	}
	d := m.Digest
	var tags []string
	if refDigest == "" {
		tags = []string{q.rt.ref}
	} else {
		// distribution-spec 1.1.1: tags given as ?tag= on a push by digest.
		for _, t := range q.r.URL.Query()["tag"] {
			if err := storage.ValidateTag(t); err != nil {
				q.fail(newErr(http.StatusBadRequest, codeManifestInvalid, err))
				return
			}
			tags = append(tags, t)
		}
		if actual := refDigest.Algorithm().FromBytes(raw); actual != refDigest {
			q.fail(newErr(http.StatusBadRequest, codeDigestInvalid, &core.DigestMismatchError{Expected: refDigest, Actual: actual}))
			return
		}
		d = refDigest
	}
	p := storage.PutManifest{Tags: tags, Digest: d, MediaType: m.MediaType, Raw: raw, ArtifactType: m.Descriptor().ArtifactType}
	if s.opts.AllowSparseManifests {
		// no reference checks
	} else if m.IsIndex() {
		for _, c := range m.Manifests {
			p.Manifests = append(p.Manifests, c.Digest)
		}
	} else {
		p.Blobs = append(p.Blobs, m.Config.Digest)
		for _, l := range m.Layers {
			if manifest.IsNonDistributable(l.MediaType) && len(l.URLs) > 0 {
				continue // fetched from its URLs, never pushed
			}
			p.Blobs = append(p.Blobs, l.Digest)
		}
	}
	if err := s.store.PutManifest(q.r.Context(), name, p); err != nil {
		var me *storage.MissingError
		if errors.As(err, &me) {
			q.fail(&apiError{Status: http.StatusBadRequest, Code: codeManifestBlobUnknown, Message: err.Error(), Detail: map[string]string{"digest": me.Digest.String()}})
			return
		}
		q.fail(err)
		return
	}
	h := q.w.Header()
	h.Set("Location", "/v2/"+name+"/manifests/"+d.String())
	h.Set("Docker-Content-Digest", d.String())
	if m.Subject != nil {
		h.Set("OCI-Subject", m.Subject.Digest.String())
	}
	if refDigest != "" {
		for _, t := range tags {
			h.Add("OCI-Tag", t)
		}
	}
	h.Set("Content-Length", "0")
	q.w.WriteHeader(http.StatusCreated)
}

// descriptorsIndex wraps descriptors in an image index (referrers API).
func descriptorsIndex(ds []ocispec.Descriptor) ocispec.Index {
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: ds}
	idx.SchemaVersion = 2
	return idx
}
