package pluginapi

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/opencontainers/go-digest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stevedore-oci/stevedore/core"
)

func TestErrorMappingRoundTrip(t *testing.T) {
	dm := &core.DigestMismatchError{Expected: digest.FromString("a"), Actual: digest.FromString("b")}
	sm := &core.SizeMismatchError{Digest: digest.FromString("c"), Expected: 10, Actual: 7}
	tests := []struct {
		err  error
		code codes.Code
		is   error
	}{
		{core.ErrNotFound, codes.NotFound, core.ErrNotFound},
		{core.ErrUnsupported, codes.Unimplemented, core.ErrUnsupported},
		{core.ErrInvalid, codes.InvalidArgument, core.ErrInvalid},
		{core.ErrManifestRejected, codes.InvalidArgument, core.ErrManifestRejected},
		{fmt.Errorf("%w (%w)", core.ErrInvalid, core.ErrManifestRejected), codes.InvalidArgument, core.ErrManifestRejected},
		{core.ErrExists, codes.AlreadyExists, core.ErrExists},
		{core.ErrUnauthorized, codes.Unauthenticated, core.ErrUnauthorized},
		{core.ErrDenied, codes.PermissionDenied, core.ErrDenied},
		{core.ErrTooLarge, codes.ResourceExhausted, core.ErrTooLarge},
		{core.ErrUnavailable, codes.Unavailable, core.ErrUnavailable},
		{core.ErrDigestMismatch, codes.DataLoss, core.ErrDigestMismatch},
		{core.ErrSizeMismatch, codes.DataLoss, core.ErrSizeMismatch},
		{dm, codes.DataLoss, core.ErrDigestMismatch},
		{sm, codes.DataLoss, core.ErrSizeMismatch},
		{context.Canceled, codes.Canceled, context.Canceled},
		{context.DeadlineExceeded, codes.DeadlineExceeded, context.DeadlineExceeded},
		{errors.New("plain"), codes.Unknown, nil},
	}
	for _, tt := range tests {
		wrapped := fmt.Errorf("oci layout /x: blob y: %w", tt.err)
		st := toStatus(wrapped)
		if got := status.Code(st); got != tt.code {
			t.Errorf("%v: code %v, want %v", tt.err, got, tt.code)
		}
		back := fromStatus(st)
		if back.Error() != wrapped.Error() {
			t.Errorf("%v: message %q, want %q", tt.err, back, wrapped)
		}
		if tt.is != nil && !errors.Is(back, tt.is) {
			t.Errorf("%v: errors.Is(%v) is false after the round trip", tt.err, tt.is)
		}
		var re *RemoteError
		if !errors.As(back, &re) || re.Code != tt.code {
			t.Errorf("%v: not a *RemoteError with code %v: %#v", tt.err, tt.code, back)
		}
	}

	var gotDM *core.DigestMismatchError
	if back := fromStatus(toStatus(fmt.Errorf("x: %w", dm))); !errors.As(back, &gotDM) || *gotDM != *dm {
		t.Errorf("digest mismatch round trip: got %+v, want %+v", gotDM, dm)
	}
	var gotSM *core.SizeMismatchError
	if back := fromStatus(toStatus(fmt.Errorf("x: %w", sm))); !errors.As(back, &gotSM) || *gotSM != *sm {
		t.Errorf("size mismatch round trip: got %+v, want %+v", gotSM, sm)
	}
}

// A plugin written without this package sets only codes; the host still maps
// them to sentinels.
func TestErrorFromBareCode(t *testing.T) {
	tests := []struct {
		code codes.Code
		is   error
	}{
		{codes.NotFound, core.ErrNotFound},
		{codes.InvalidArgument, core.ErrInvalid},
		{codes.Unimplemented, core.ErrUnsupported},
		{codes.DataLoss, core.ErrDigestMismatch},
		{codes.ResourceExhausted, core.ErrTooLarge},
		{codes.Unavailable, core.ErrUnavailable},
		{codes.Canceled, context.Canceled},
		{codes.DeadlineExceeded, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		err := fromStatus(status.Error(tt.code, "third party says no"))
		if !errors.Is(err, tt.is) || err.Error() != "third party says no" || errors.Is(err, core.ErrManifestRejected) {
			t.Errorf("code %v: got %v, want errors.Is %v", tt.code, err, tt.is)
		}
	}
	if err := fromStatus(nil); err != nil {
		t.Errorf("fromStatus(nil) = %v", err)
	}
	if err := toStatus(nil); err != nil {
		t.Errorf("toStatus(nil) = %v", err)
	}
}

func TestErrorMessageIsOneLine(t *testing.T) {
	got := fromStatus(toStatus(fmt.Errorf("line one\nline two: %w", core.ErrInvalid))).Error()
	if want := "line one; line two: invalid"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}
