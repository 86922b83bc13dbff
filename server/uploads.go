package server

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/server/storage"
)

func uploadLocation(name, id string) string { return "/v2/" + name + "/blobs/uploads/" + id }

func blobLocation(name string, d digest.Digest) string { return "/v2/" + name + "/blobs/" + d.String() }

// uploadHeaders describes a session's state to the client.
func uploadHeaders(w http.ResponseWriter, name string, u *storage.Upload) {
	h := w.Header()
	h.Set("Location", uploadLocation(name, u.ID()))
	h.Set("Docker-Upload-UUID", u.ID())
	end := u.Offset() - 1
	if end < 0 {
		end = 0
	}
	h.Set("Range", "0-"+strconv.FormatInt(end, 10))
	h.Set("Content-Length", "0")
}

func blobCreated(w http.ResponseWriter, name string, d digest.Digest) {
	h := w.Header()
	h.Set("Location", blobLocation(name, d))
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// upload serves /v2/<name>/blobs/uploads/[<id>].
func (s *Server) upload(q *request) {
	name := q.rt.name
	if q.rt.ref == "" {
		if q.r.Method != http.MethodPost {
			methodNotAllowed(q)
			return
		}
		s.startUpload(q)
		return
	}
	u, err := s.store.Upload(name, q.rt.ref)
	if err != nil {
		q.fail(newErr(http.StatusNotFound, codeBlobUploadUnknown, err))
		return
	}
	switch q.r.Method {
	case http.MethodGet:
		uploadHeaders(q.w, name, u)
		q.w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		u.Cancel()
		q.w.Header().Set("Content-Length", "0")
		q.w.WriteHeader(http.StatusNoContent)
	case http.MethodPatch:
		if !s.writeChunk(q, u) {
			return
		}
		uploadHeaders(q.w, name, u)
		q.w.WriteHeader(http.StatusAccepted)
	case http.MethodPut:
		d, err := storage.ParseDigest(q.r.URL.Query().Get("digest"))
		if err != nil {
			q.fail(digestErr(err))
			return
		}
		if q.r.ContentLength != 0 {
			if !s.writeChunk(q, u) {
				return
			}
		}
		if err := u.Commit(q.r.Context(), d, -1); err != nil {
			q.fail(err)
			return
		}
		blobCreated(q.w, name, d)
	default:
		methodNotAllowed(q)
	}
}

// startUpload handles POST: cross-repository mount, monolithic upload, or a
// new session.
func (s *Server) startUpload(q *request) {
	name := q.rt.name
	qv := q.r.URL.Query()
	if m := qv.Get("mount"); m != "" {
		if d, err := storage.ParseDigest(m); err == nil {
			if s.tryMount(q, d, qv.Get("from")) {
				return
			}
		}
	} else if ds := qv.Get("digest"); ds != "" {
		d, err := storage.ParseDigest(ds)
		if err != nil {
			q.fail(digestErr(err))
			return
		}
		u, err := s.store.NewUpload(name)
		if err != nil {
			q.fail(err)
			return
		}
		if _, err := u.Write(q.r.Context(), q.r.Body, -1); err != nil {
			u.Cancel()
			q.fail(uploadErr(err))
			return
		}
		if err := u.Commit(q.r.Context(), d, -1); err != nil {
			u.Cancel()
			q.fail(err)
			return
		}
		blobCreated(q.w, name, d)
		return
	}
	u, err := s.store.NewUpload(name)
	if err != nil {
		q.fail(err)
		return
	}
	if q.r.ContentLength > 0 {
		// A body on a POST without digest starts the upload (streamed).
		if _, err := u.Write(q.r.Context(), q.r.Body, -1); err != nil {
			q.fail(uploadErr(err))
			return
		}
	}
	uploadHeaders(q.w, name, u)
	q.w.WriteHeader(http.StatusAccepted)
}

// tryMount links blob d from repository from (or, with no from and no
// access control, from any repository) and answers 201; false means the
// caller should open an upload session instead.
func (s *Server) tryMount(q *request, d digest.Digest, from string) bool {
	name := q.rt.name
	var size int64
	var err error
	if from != "" {
		if storage.ValidateName(from) != nil {
			return false
		}
		if s.auth.check2(q.r, q.id, from, ActionPull) != nil {
			return false
		}
		size, err = s.store.Mount(q.r.Context(), name, from, d)
	} else if s.auth.open() {
		size, err = s.store.MountAny(q.r.Context(), name, d)
	} else {
		// Mount only from a repository this caller may pull.
		repos, lerr := s.store.Repositories(q.r.Context())
		if lerr != nil {
			return false
		}
		err = storage.ErrBlobUnknown
		for _, from := range repos {
			if from == name {
				continue
			}
			if _, serr := s.store.StatBlob(from, d); serr != nil || s.auth.check2(q.r, q.id, from, ActionPull) != nil {
				continue
			}
			size, err = s.store.Mount(q.r.Context(), name, from, d)
			break
		}
	}
	if err != nil {
		return false
	}
	_ = size
	blobCreated(q.w, name, d)
	return true
}

// writeChunk appends the request body to u, checking Content-Range. On
// failure it has answered the request.
func (s *Server) writeChunk(q *request, u *storage.Upload) bool {
	start := int64(-1)
	if cr := q.r.Header.Get("Content-Range"); cr != "" {
		a, b, ok := parseContentRange(cr)
		if !ok {
			uploadHeaders(q.w, q.rt.name, u)
			q.fail(newErr(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid, fmt.Errorf("malformed Content-Range %q", cr)))
			return false
		}
		if q.r.ContentLength >= 0 && b-a+1 != q.r.ContentLength {
			uploadHeaders(q.w, q.rt.name, u)
			q.fail(newErr(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid, fmt.Errorf("Content-Range %q does not match Content-Length %d", cr, q.r.ContentLength)))
			return false
		}
		start = a
	}
	if _, err := u.Write(q.r.Context(), q.r.Body, start); err != nil {
		uploadHeaders(q.w, q.rt.name, u)
		q.fail(uploadErr(err))
		return false
	}
	return true
}

func uploadErr(err error) error {
	switch {
	case errors.Is(err, storage.ErrRange):
		return newErr(http.StatusRequestedRangeNotSatisfiable, codeBlobUploadInvalid, err)
	case errors.Is(err, core.ErrTooLarge):
		return newErr(http.StatusRequestEntityTooLarge, codeSizeInvalid, err)
	case errors.Is(err, core.ErrNotFound):
		return newErr(http.StatusNotFound, codeBlobUploadUnknown, err)
	}
	return newErr(http.StatusBadRequest, codeBlobUploadInvalid, err)
}

// parseContentRange reads "start-end" (optionally "bytes=start-end" or
// "bytes start-end/total").
func parseContentRange(s string) (int64, int64, bool) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "bytes="), "bytes ")
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	as, bs, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, false
	}
	a, err1 := strconv.ParseInt(as, 10, 64)
	b, err2 := strconv.ParseInt(bs, 10, 64)
	if err1 != nil || err2 != nil || a < 0 || b < a {
		return 0, 0, false
	}
	return a, b, true
}
