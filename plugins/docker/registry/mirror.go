package registry

import (
	"context"
	"fmt"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// mirror is a registries.conf mirror of a source endpoint: tried, in
// order, before the endpoint itself when an image is resolved.
type mirror struct {
	ep              *endpoint
	byTag, byDigest bool // which references it serves (pull-from-mirror)
}

// source is the endpoint reads go to: the mirror (or the endpoint itself)
// that resolved the image, once one did.
func (e *endpoint) source() *endpoint {
	if s := e.pinned.Load(); s != nil {
		return s
	}
	return e
}

// resolveMirrored tries each mirror that serves ref, then the endpoint
// itself, and reads the rest of the image from the first that has it, as
// containers/image does.
func (e *endpoint) resolveMirrored(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	_, want, err := parseRef(ref)
	if err != nil {
		return e.resolveHere(ctx, ref)
	}
	var tried []string
	for _, m := range e.mirrors {
		if (want != "" && !m.byDigest) || (want == "" && !m.byTag) {
			continue
		}
		desc, err := m.ep.resolveHere(ctx, ref)
		if err == nil {
			e.pinned.Store(m.ep)
			return desc, nil
		}
		if ctx.Err() != nil {
			return ocispec.Descriptor{}, err
		}
		tried = append(tried, err.Error())
	}
	desc, err := e.resolveHere(ctx, ref)
	if err == nil {
		e.pinned.Store(e)
		return desc, nil
	}
	if len(tried) > 0 {
		err = fmt.Errorf("%w (mirrors tried first: %s)", err, strings.Join(tried, "; "))
	}
	return ocispec.Descriptor{}, err
}
