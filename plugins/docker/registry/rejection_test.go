package registry

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stevedore-oci/stevedore/core"
)

// Which refusals of a manifest PUT name its type (the host may then write
// the image in the other format), as registries send them.
func TestTypeRejection(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   bool
	}{
		{"zot before its error body", http.StatusUnsupportedMediaType, "", true},
		{"zot", http.StatusUnsupportedMediaType, `{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}}]}`, true},
		{"OpenShift without schema 2", http.StatusBadRequest, `{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":"schema 2 manifests are not accepted"}]}`, true},
		{"docker/distribution tag check", http.StatusBadRequest, `{"errors":[{"code":"TAG_INVALID","message":"manifest tag did not match URI"}]}`, true},
		{"ECR without a top-level mediaType", http.StatusBadRequest, `{"errors":[{"code":"UNSUPPORTED","message":"Invalid JSON syntax"}]}`, true},
		{"a missing blob", http.StatusBadRequest, `{"errors":[{"code":"MANIFEST_BLOB_UNKNOWN","message":"blob unknown to registry"}]}`, false},
		{"another unsupported", http.StatusBadRequest, `{"errors":[{"code":"UNSUPPORTED","message":"the operation is unsupported"}]}`, false},
		{"denied", http.StatusForbidden, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: tt.status, Body: io.NopCloser(strings.NewReader(tt.body)), Header: http.Header{}}
			err := typeRejection(responseError(resp), "application/x-test")
			if got := errors.Is(err, core.ErrManifestRejected); got != tt.want {
				t.Fatalf("rejected = %v, want %v (%v)", got, tt.want, err)
			}
			if tt.want && !strings.Contains(err.Error(), "refused as application/x-test") {
				t.Fatalf("message does not name the refused type: %v", err)
			}
		})
	}
}
