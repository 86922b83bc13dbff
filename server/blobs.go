package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/server/storage"
)

func digestErr(err error) *apiError {
	return newErr(http.StatusBadRequest, codeDigestInvalid, err)
}

// asNotFound labels a not-found error with the API's more precise
// sentinel; other errors pass unchanged.
func asNotFound(err, sentinel error) error {
	if errors.Is(err, core.ErrNotFound) && !errors.Is(err, sentinel) {
		return fmt.Errorf("%w: %w", sentinel, err)
	}
	return err
}

// blob serves GET/HEAD/DELETE /v2/<name>/blobs/<digest>.
func (s *Server) blob(q *request) {
	d, err := storage.ParseDigest(q.rt.ref)
	if err != nil {
		q.fail(digestErr(err))
		return
	}
	switch q.r.Method {
	case http.MethodHead:
		size, err := s.store.StatBlob(q.rt.name, d)
		if err != nil {
			q.fail(asNotFound(err, storage.ErrBlobUnknown))
			return
		}
		h := q.w.Header()
		h.Set("Content-Length", strconv.FormatInt(size, 10))
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Docker-Content-Digest", d.String())
		h.Set("Accept-Ranges", "bytes")
		q.w.WriteHeader(http.StatusOK)
	case http.MethodGet:
		f, err := s.store.OpenBlob(q.rt.name, d)
		if err != nil {
			q.fail(asNotFound(err, storage.ErrBlobUnknown))
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			q.fail(err)
			return
		}
		h := q.w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Docker-Content-Digest", d.String())
		h.Set("Etag", `"`+d.String()+`"`)
		h.Set("Cache-Control", "max-age=31536000")
		// ServeContent answers Range (206/416) and uses sendfile.
		http.ServeContent(q.w, q.r, "", fi.ModTime(), f)
	case http.MethodDelete:
		if err := s.store.DeleteBlob(q.rt.name, d); err != nil {
			q.fail(asNotFound(err, storage.ErrBlobUnknown))
			return
		}
		q.w.Header().Set("Content-Length", "0")
		q.w.WriteHeader(http.StatusAccepted)
	default:
		methodNotAllowed(q)
	}
}
