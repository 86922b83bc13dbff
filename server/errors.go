package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/server/storage"
)

// Error codes of the distribution spec.
const (
	codeBlobUnknown         = "BLOB_UNKNOWN"
	codeBlobUploadInvalid   = "BLOB_UPLOAD_INVALID"
	codeBlobUploadUnknown   = "BLOB_UPLOAD_UNKNOWN"
	codeDigestInvalid       = "DIGEST_INVALID"
	codeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	codeManifestInvalid     = "MANIFEST_INVALID"
	codeManifestUnknown     = "MANIFEST_UNKNOWN"
	codeNameInvalid         = "NAME_INVALID"
	codeNameUnknown         = "NAME_UNKNOWN"
	codeSizeInvalid         = "SIZE_INVALID"
	codeUnauthorized        = "UNAUTHORIZED"
	codeDenied              = "DENIED"
	codeUnsupported         = "UNSUPPORTED"
	codeTooManyRequests     = "TOOMANYREQUESTS"
)

// apiError is one entry of the spec's error envelope plus its status.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func newErr(status int, code string, err error) *apiError {
	return &apiError{Status: status, Code: code, Message: err.Error()}
}

// writeError sends the spec's JSON error envelope. Non-API errors become a
// code by their core sentinel.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = classify(err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	h.Del("Docker-Content-Digest")
	w.WriteHeader(ae.Status)
	if r.Method == http.MethodHead {
		return
	}
	_ = json.NewEncoder(w).Encode(struct {
		Errors []*apiError `json:"errors"`
	}{[]*apiError{ae}})
}

func classify(err error) *apiError {
	switch {
	case errors.Is(err, storage.ErrNameUnknown):
		return newErr(http.StatusNotFound, codeNameUnknown, err)
	case errors.Is(err, storage.ErrManifestUnknown):
		return newErr(http.StatusNotFound, codeManifestUnknown, err)
	case errors.Is(err, storage.ErrBlobUnknown):
		return newErr(http.StatusNotFound, codeBlobUnknown, err)
	case errors.Is(err, core.ErrDigestMismatch):
		return newErr(http.StatusBadRequest, codeDigestInvalid, err)
	case errors.Is(err, core.ErrSizeMismatch):
		return newErr(http.StatusBadRequest, codeSizeInvalid, err)
	case errors.Is(err, core.ErrTooLarge):
		return newErr(http.StatusRequestEntityTooLarge, codeSizeInvalid, err)
	case errors.Is(err, core.ErrUnauthorized):
		return newErr(http.StatusUnauthorized, codeUnauthorized, err)
	case errors.Is(err, core.ErrDenied):
		return newErr(http.StatusForbidden, codeDenied, err)
	case errors.Is(err, core.ErrUnsupported):
		return newErr(http.StatusMethodNotAllowed, codeUnsupported, err)
	case errors.Is(err, core.ErrUnavailable):
		return newErr(http.StatusTooManyRequests, codeTooManyRequests, err)
	case errors.Is(err, core.ErrNotFound):
		return newErr(http.StatusNotFound, codeNameUnknown, err)
	}
	return &apiError{Status: http.StatusInternalServerError, Code: "UNKNOWN", Message: err.Error()}
}
