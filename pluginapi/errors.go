package pluginapi

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stevedore-oci/stevedore/core"
)

// errorDomain names the ErrorInfo details this package attaches to statuses.
const errorDomain = "stevedore.transport.v1"

// sentinelCodes maps each core sentinel to its gRPC code and the ErrorInfo
// reason that identifies it exactly (codes alone are ambiguous: digest and
// size mismatches are both DataLoss). Order matters: the first match wins.
var sentinelCodes = []struct {
	err    error
	code   codes.Code
	reason string
}{
	// Before ErrInvalid, which a rejection may wrap too; recognised by its
	// reason only (sentinelFromCode skips it).
	{core.ErrManifestRejected, codes.InvalidArgument, "MANIFEST_REJECTED"},
	{core.ErrNotFound, codes.NotFound, "NOT_FOUND"},
	{core.ErrDigestMismatch, codes.DataLoss, "DIGEST_MISMATCH"},
	{core.ErrSizeMismatch, codes.DataLoss, "SIZE_MISMATCH"},
	{core.ErrUnsupported, codes.Unimplemented, "UNSUPPORTED"},
	{core.ErrInvalid, codes.InvalidArgument, "INVALID"},
	{core.ErrExists, codes.AlreadyExists, "EXISTS"},
	{core.ErrUnauthorized, codes.Unauthenticated, "UNAUTHORIZED"},
	{core.ErrDenied, codes.PermissionDenied, "DENIED"},
	{core.ErrTooLarge, codes.ResourceExhausted, "TOO_LARGE"},
	{core.ErrUnavailable, codes.Unavailable, "UNAVAILABLE"},
}

// toStatus turns a transport's error into a gRPC status error carrying the
// one-line message, the code of the core sentinel it wraps, and an ErrorInfo
// detail with the sentinel's reason (plus expected/actual for mismatches).
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		// Already a status (e.g. from a nested gRPC call): keep it.
		return err
	}
	msg := oneLine(err.Error())
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, msg)
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, msg)
	}
	for _, s := range sentinelCodes {
		if !errors.Is(err, s.err) {
			continue
		}
		info := &errdetails.ErrorInfo{Reason: s.reason, Domain: errorDomain}
		var dm *core.DigestMismatchError
		var sm *core.SizeMismatchError
		switch {
		case errors.As(err, &dm):
			info.Metadata = map[string]string{"expected": dm.Expected.String(), "actual": dm.Actual.String()}
		case errors.As(err, &sm):
			info.Metadata = map[string]string{
				"digest":   sm.Digest.String(),
				"expected": strconv.FormatInt(sm.Expected, 10),
				"actual":   strconv.FormatInt(sm.Actual, 10),
			}
		}
		st, derr := status.New(s.code, msg).WithDetails(info)
		if derr != nil {
			return status.Error(s.code, msg)
		}
		return st.Err()
	}
	return status.Error(codes.Unknown, msg)
}

// RemoteError is an error that came back from a plugin. Error returns the
// plugin's message unchanged; Unwrap yields the core sentinel (or the
// *core.DigestMismatchError / *core.SizeMismatchError, or the context error)
// it stands for, so errors.Is and errors.As work on the host side.
type RemoteError struct {
	Code    codes.Code
	Message string
	err     error
}

func (e *RemoteError) Error() string { return e.Message }

// Unwrap returns the core error this remote error stands for, or nil.
func (e *RemoteError) Unwrap() error { return e.err }

// fromStatus turns an error returned by a gRPC call into a *RemoteError.
// Errors that are not statuses are returned unchanged.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	re := &RemoteError{Code: st.Code(), Message: st.Message()}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != errorDomain {
			continue
		}
		re.err = sentinelFromReason(info)
		if re.err != nil {
			return re
		}
	}
	re.err = sentinelFromCode(st.Code())
	return re
}

func sentinelFromReason(info *errdetails.ErrorInfo) error {
	md := info.GetMetadata()
	switch info.GetReason() {
	case "DIGEST_MISMATCH":
		if md["expected"] != "" || md["actual"] != "" {
			return &core.DigestMismatchError{Expected: digest.Digest(md["expected"]), Actual: digest.Digest(md["actual"])}
		}
	case "SIZE_MISMATCH":
		exp, err1 := strconv.ParseInt(md["expected"], 10, 64)
		act, err2 := strconv.ParseInt(md["actual"], 10, 64)
		if err1 == nil && err2 == nil {
			return &core.SizeMismatchError{Digest: digest.Digest(md["digest"]), Expected: exp, Actual: act}
		}
	}
	for _, s := range sentinelCodes {
		if s.reason == info.GetReason() {
			return s.err
		}
	}
	return nil
}

// sentinelFromCode is the fallback for plugins that set only a code.
func sentinelFromCode(c codes.Code) error {
	switch c {
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	case codes.DataLoss:
		return core.ErrDigestMismatch
	}
	for _, s := range sentinelCodes {
		if s.code == c && s.err != core.ErrManifestRejected {
			return s.err
		}
	}
	return nil
}

// oneLine keeps messages on one line, as the project's error style requires.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Join(strings.Fields(strings.NewReplacer("\r\n", "; ", "\n", "; ", "\r", "; ").Replace(s)), " ")
}
