package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
)

// mirror is a registries.conf mirror of a source endpoint: tried, in
// order, before the endpoint itself when an image is resolved.
type mirror struct {
	ep              *endpoint
	byTag, byDigest bool // which references it serves (pull-from-mirror)
}

// readSources lists where a read by digest goes: the source that resolved
// an image last, then the mirrors that serve digest pulls, then the
// endpoint itself, each once. What is read is checked against its digest
// wherever it comes from, so a blob a partial mirror lacks may come from
// the next source.
func (e *endpoint) readSources() []*endpoint {
	out := make([]*endpoint, 0, len(e.mirrors)+2)
	if p := e.pinned.Load(); p != nil {
		out = append(out, p)
	}
	for _, m := range e.mirrors {
		if m.byDigest && !slices.Contains(out, m.ep) {
			out = append(out, m.ep)
		}
	}
	if !slices.Contains(out, e) {
		out = append(out, e)
	}
	return out
}

// anyReadFailure reports whether a read failed in a way another source
// may not: not there, not allowed, not reachable.
func anyReadFailure(err error) bool {
	return errors.Is(err, core.ErrNotFound) || errors.Is(err, core.ErrUnavailable) ||
		errors.Is(err, core.ErrUnauthorized) || errors.Is(err, core.ErrDenied)
}

// fromSources reads from the first of e's read sources that has it, going
// on to the next while next says the failure may be that source's alone;
// the error is the first source's.
func fromSources[T any](ctx context.Context, e *endpoint, next func(error) bool, read func(*endpoint) (T, error)) (T, error) {
	var first error
	for _, s := range e.readSources() {
		v, err := read(s)
		if err == nil {
			return v, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil || !next(err) {
			break
		}
	}
	var zero T
	return zero, first
}

// resolveMirrored resolves ref with resolve on each mirror that serves it,
// then on the endpoint itself, as containers/image does; the one that
// answers is read from first for the rest of the image (see readSources).
func (e *endpoint) resolveMirrored(ctx context.Context, ref string, resolve func(*endpoint) (ocispec.Descriptor, []byte, error)) (ocispec.Descriptor, []byte, error) {
	_, want, err := parseRef(ref)
	if err != nil {
		return resolve(e)
	}
	var tried []string
	for _, m := range e.mirrors {
		if (want != "" && !m.byDigest) || (want == "" && !m.byTag) {
			continue
		}
		desc, raw, err := resolve(m.ep)
		if err == nil {
			e.pinned.Store(m.ep)
			return desc, raw, nil
		}
		if ctx.Err() != nil {
			return ocispec.Descriptor{}, nil, err
		}
		tried = append(tried, err.Error())
	}
	desc, raw, err := resolve(e)
	if err == nil {
		e.pinned.Store(e)
		return desc, raw, nil
	}
	if len(tried) > 0 {
		err = fmt.Errorf("%w (mirrors tried first: %s)", err, strings.Join(tried, "; "))
	}
	return ocispec.Descriptor{}, nil, err
}
