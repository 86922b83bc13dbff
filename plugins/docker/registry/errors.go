package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/stevedore-oci/stevedore/core"
)

// httpError is a registry answer other than the one a step expects.
type httpError struct {
	status int
	codes  []string
	detail string
}

func (e *httpError) Error() string {
	msg := fmt.Sprintf("HTTP %d %s", e.status, http.StatusText(e.status))
	if e.detail != "" {
		msg += ": " + e.detail
	}
	return msg
}

func (e *httpError) hasCode(code string) bool {
	for _, c := range e.codes {
		if c == code {
			return true
		}
	}
	return false
}

// Unwrap maps the answer to the core sentinel callers test with errors.Is.
func (e *httpError) Unwrap() error {
	switch {
	case e.hasCode("DIGEST_INVALID"):
		return core.ErrDigestMismatch
	case e.hasCode("SIZE_INVALID"):
		return core.ErrSizeMismatch
	case e.hasCode("BLOB_UNKNOWN"), e.hasCode("MANIFEST_BLOB_UNKNOWN"), e.hasCode("NAME_UNKNOWN"), e.hasCode("MANIFEST_UNKNOWN"):
		return core.ErrNotFound
	case e.hasCode("UNSUPPORTED"):
		return core.ErrUnsupported
	case e.hasCode("DENIED"):
		return core.ErrDenied
	case e.hasCode("UNAUTHORIZED"):
		return core.ErrUnauthorized
	case e.hasCode("TOOMANYREQUESTS"):
		return core.ErrUnavailable
	}
	switch s := e.status; {
	case s == http.StatusUnauthorized:
		return core.ErrUnauthorized
	case s == http.StatusForbidden:
		return core.ErrDenied
	case s == http.StatusNotFound:
		return core.ErrNotFound
	case s == http.StatusMethodNotAllowed, s == http.StatusNotImplemented:
		return core.ErrUnsupported
	case s == http.StatusConflict:
		return core.ErrExists
	case s == http.StatusRequestEntityTooLarge:
		return core.ErrTooLarge
	case s == http.StatusTooManyRequests, s == http.StatusRequestTimeout, s >= 500:
		return core.ErrUnavailable
	}
	return core.ErrInvalid
}

// maxErrorBody caps how much of an error answer is read.
const maxErrorBody = 64 << 10

// responseError reads the error envelope of resp ({"errors":[{code,
// message, detail}]}) and closes the body.
func responseError(resp *http.Response) error {
	defer resp.Body.Close()
	e := &httpError{status: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var env struct {
		Errors []struct {
			Code    string          `json:"code"`
			Message string          `json:"message"`
			Detail  json.RawMessage `json:"detail"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &env) == nil && len(env.Errors) > 0 {
		var parts []string
		for _, x := range env.Errors {
			e.codes = append(e.codes, x.Code)
			p := x.Code
			if x.Message != "" {
				p += ": " + x.Message
			}
			if d := strings.TrimSpace(string(x.Detail)); d != "" && d != "null" && len(d) < 300 {
				p += " (" + d + ")"
			}
			parts = append(parts, p)
		}
		e.detail = strings.Join(parts, "; ")
	} else if s := strings.TrimSpace(string(b)); s != "" && len(s) < 300 && !strings.ContainsAny(s, "<>") {
		e.detail = s
	}
	e.detail = oneLine(e.detail)
	e.addRetryAfter(resp)
	return e
}

// statusError is the error of an answer without a body to read (HEAD).
func statusError(resp *http.Response) *httpError {
	e := &httpError{status: resp.StatusCode}
	e.addRetryAfter(resp)
	return e
}

// addRetryAfter says how long a 429 or 503 asks to wait.
func (e *httpError) addRetryAfter(resp *http.Response) {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return
	}
	if d, ok := retryAfter(resp); ok {
		if e.detail != "" {
			e.detail += "; "
		}
		e.detail += "the registry asks to retry after " + d.Round(time.Second).String()
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// credentialError is a failure to look credentials up (an auth file that is
// not JSON, a credential helper that fails), which oras-go and net/http
// return inside "HEAD "URL": failed to resolve credential: ...".
type credentialError struct{ err error }

func (e *credentialError) Error() string { return e.err.Error() }
func (e *credentialError) Unwrap() error { return e.err }

// convert turns errors of oras-go and net/http into errors wrapping core
// sentinels, keeping context errors as they are. Hints name the endpoint's
// flags (options.flagPrefix).
func (e *endpoint) convert(err error) error {
	err = convertWith(err, e.opts.flagPrefix)
	var te *tlsError
	if e.opts.certDir != "" && errors.As(err, &te) && te.kind != tlsPlainHTTP {
		if _, serr := os.Stat(e.opts.certDir); serr != nil {
			// "add its CA with --cert-dir" to someone who gave one: a
			// misspelt directory is the likely cause.
			te.certDirMissing = e.opts.certDir
		}
	}
	return err
}

// convertWith is convert for the flags --PREFIXtls-verify, --PREFIXcert-dir.
// It can be applied to its own result.
func convertWith(err error, flagPrefix string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var te *tlsError
	if errors.As(err, &te) {
		return err
	}
	var ce *credentialError
	if errors.As(err, &ce) {
		// The step is named by fail; the method and URL would repeat it.
		return fmt.Errorf("looking up credentials: %w", ce.err)
	}
	var he *httpError
	if errors.As(err, &he) {
		return err
	}
	var er *errcode.ErrorResponse
	if errors.As(err, &er) {
		h := &httpError{status: er.StatusCode}
		var parts []string
		for _, x := range er.Errors {
			h.codes = append(h.codes, x.Code)
			parts = append(parts, errcodeText(x))
		}
		h.detail = oneLine(strings.Join(parts, "; "))
		if er.URL != nil && !strings.Contains(er.URL.Path, "/v2/") {
			// The answer came from the token service, not the registry.
			h.detail = oneLine(strings.TrimSpace("token service " + er.URL.Host + ": " + h.detail))
		}
		return h
	}
	switch {
	case errors.Is(err, auth.ErrBasicCredentialNotFound):
		return fmt.Errorf("the registry asks for a login and no credentials were found: %w", core.ErrUnauthorized)
	case errors.Is(err, errdef.ErrNotFound):
		return fmt.Errorf("%s: %w", oneLine(err.Error()), core.ErrNotFound)
	case errors.Is(err, errdef.ErrSizeExceedsLimit):
		return fmt.Errorf("%s: %w", oneLine(err.Error()), core.ErrTooLarge)
	case errors.Is(err, errdef.ErrUnsupported):
		return fmt.Errorf("%s: %w", oneLine(err.Error()), core.ErrUnsupported)
	}
	if kind := tlsFailure(err); kind != tlsOK {
		return &tlsError{cause: transportCause(err), kind: kind, flagPrefix: flagPrefix}
	}
	if isNetworkError(err) {
		return fmt.Errorf("%s: %w", transportCause(err), core.ErrUnavailable)
	}
	return err
}

// errcodeText is the text of one error of an error answer that oras-go
// decoded: its own Error() prints the detail with %v, which makes Go syntax
// of distribution's JSON ("[map[Action:pull Class: Name:r Type:repository]]").
// The detail is written as the JSON it came as, when short, as
// responseError does.
func errcodeText(x errcode.Error) string {
	d := x.Detail
	x.Detail = nil
	s := x.Error()
	if d == nil {
		return s
	}
	if b, err := json.Marshal(d); err == nil && len(b) < 300 && string(b) != "null" {
		s += " (" + string(b) + ")"
	}
	return s
}

// transportCause is the text of a failed request without the method and URL
// Go's url.Error puts in front: the step (and so the URL) is already named
// by fail, and blob URLs would repeat the digest.
func transportCause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return oneLine(ue.Err.Error())
	}
	return oneLine(err.Error())
}

// tlsKind is a TLS failure that retrying cannot fix.
type tlsKind int

const (
	tlsOK tlsKind = iota
	tlsUntrusted
	tlsClientCert
	tlsPlainHTTP
)

// tlsFailure says which TLS failure err is, if any.
func tlsFailure(err error) tlsKind {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci):
		return tlsUntrusted
	case strings.Contains(err.Error(), "tls: certificate required"), strings.Contains(err.Error(), "tls: bad certificate"):
		return tlsClientCert
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return tlsPlainHTTP
	}
	return tlsOK
}

// tlsError is a TLS failure with a hint that names the flags of the
// endpoint's side: a command with one registry has --tls-verify and
// --cert-dir, copy and sync --src- and --dest- forms (the flag-prefix
// option).
type tlsError struct {
	cause      string
	kind       tlsKind
	flagPrefix string
	// certDirMissing is the cert-dir given, when it does not exist.
	certDirMissing string
}

func (e *tlsError) Error() string {
	p := "--" + e.flagPrefix
	var hint string
	switch e.kind {
	case tlsUntrusted:
		hint = "the registry's certificate is not trusted: add its CA with " + p + "cert-dir or /etc/containers/certs.d/HOST/ca.crt, or use " + p + "tls-verify=false"
	case tlsClientCert:
		hint = "the registry wants a client certificate: put NAME.cert and NAME.key in " + p + "cert-dir or /etc/containers/certs.d/HOST"
	default:
		hint = "the registry speaks plain HTTP: use " + p + "tls-verify=false"
	}
	if e.certDirMissing != "" {
		hint = p + "cert-dir " + e.certDirMissing + " does not exist; " + hint
	}
	return e.cause + " (" + hint + "): " + core.ErrInvalid.Error()
}

func (e *tlsError) Unwrap() error { return core.ErrInvalid }

func isNetworkError(err error) bool {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		// A local file's failure (a full disk writing a blob into a
		// layout): syscall.Errno passes for a net.Error, but trying
		// again does not help.
		return false
	}
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe")
}

// fail wraps err with the registry, repository and step, and for 401/403
// with the credentials source. The result is one line.
func (e *endpoint) fail(step string, err error) error {
	err = e.convert(err)
	where := "registry " + e.name
	if e.repo != "" { // an endpoint opened at the registry alone has none
		where += ", repository " + e.repo
	}
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		err = fmt.Errorf("%s: %s: %w", where, step, err)
	case errors.Is(err, core.ErrUnauthorized) || errors.Is(err, core.ErrDenied):
		err = fmt.Errorf("%s: %s: %w (credentials: %s)", where, step, err, e.creds.describe())
	default:
		err = fmt.Errorf("%s: %s: %w", where, step, err)
	}
	return redactURLs(err)
}

// urlQuery finds the query of a URL in an error's text.
// (Compiled on first use: the plugin starts on every command.)
var urlQuery = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(https?://[^\s"?]*)\?[^\s"]*`)
})

// redactURLs drops the queries of the URLs an error quotes (oras-go and
// net/http quote request URLs): a blob redirected to storage carries a
// presigned URL (X-Amz-Signature=...), an upload its session state.
func redactURLs(err error) error {
	msg := err.Error()
	if !strings.Contains(msg, "?") {
		return err
	}
	if red := urlQuery().ReplaceAllString(msg, "$1?..."); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

// redactedError is err with another text; errors.Is and As see err.
type redactedError struct {
	msg string
	err error
}

func (r *redactedError) Error() string { return r.msg }
func (r *redactedError) Unwrap() error { return r.err }
