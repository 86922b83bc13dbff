package registry

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/stevedore-oci/stevedore/core"
)

// An error answer decoded by oras-go (a tag list, a catalog) names its
// detail as the JSON the registry sent, not in Go syntax.
func TestConvertErrcodeDetail(t *testing.T) {
	var detail any
	if err := json.Unmarshal([]byte(`[{"Type":"repository","Class":"","Name":"m/a","Action":"pull"}]`), &detail); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("http://127.0.0.1:5000/v2/m/a/tags/list")
	in := &errcode.ErrorResponse{Method: http.MethodGet, URL: u, StatusCode: http.StatusUnauthorized,
		Errors: errcode.Errors{{Code: "UNAUTHORIZED", Message: "authentication required", Detail: detail}}}
	err := convertWith(in, "")
	if !errors.Is(err, core.ErrUnauthorized) {
		t.Fatalf("%v is not unauthorized", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "map[") || !strings.Contains(msg, `unauthorized: authentication required ([{"Action":"pull","Class":"","Name":"m/a","Type":"repository"}])`) {
		t.Fatalf("message %q", msg)
	}
	// No detail: as oras-go writes it.
	in.Errors[0].Detail = nil
	if msg := convertWith(in, "").Error(); !strings.HasSuffix(msg, "unauthorized: authentication required") {
		t.Fatalf("message %q", msg)
	}
}
