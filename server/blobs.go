package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

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
		s.store.TouchBlob(q.rt.name, d) // the client may now skip uploading it
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
		// ServeContent answers Range (206/416). The body goes through a
		// 256 KiB buffer rather than sendfile: measured with crane on this
		// kind of machine, sendfile's large bursts cost the client ~0.5 s
		// more system time per GB and made pulls slower than from
		// docker-registry; the buffered copy made them faster.
		http.ServeContent(bufferedBody{q.w}, q.r, "", fi.ModTime(), readSeekerOnly{f})
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

// readSeekerOnly hides *os.File so that net/http does not use sendfile.
type readSeekerOnly struct{ io.ReadSeeker }

// bufferedBody copies a response body through a pooled 256 KiB buffer.
type bufferedBody struct{ http.ResponseWriter }

var bodyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

func (w bufferedBody) ReadFrom(r io.Reader) (int64, error) {
	bp := bodyBufs.Get().(*[]byte)
	defer bodyBufs.Put(bp)
	return io.CopyBuffer(struct{ io.Writer }{w.ResponseWriter}, r, *bp)
}
