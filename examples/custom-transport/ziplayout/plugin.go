// Package ziplayout is a Stevedore transport for OCI image layouts kept in a
// zip file: "zip:PATH[:REF]", where REF is a tag (the layout's
// org.opencontainers.image.ref.name), a digest, or empty for the archive's
// only image.
//
// The archive holds an ordinary image layout (oci-layout, index.json,
// blobs/ALG/HEX), so `unzip` gives a directory skopeo, umoci and stevedore's
// oci: transport read. Blobs are stored uncompressed (layers already are
// compressed), which makes the archive random-access: a blob, or the rest of
// one from an offset, is a section of the file, found through the zip's
// central directory without reading anything else.
//
// Writing follows the contract's ingest-then-commit rule. Each blob is
// streamed into a staging directory next to the archive and verified against
// its digest; Commit writes a new archive (the previous archive's entries,
// copied without recompression, then the new blobs, then index.json) to a
// temporary file, syncs it and renames it over PATH. Close without Commit
// removes the staging directory and leaves PATH as it was. One writer per
// archive at a time: two concurrent writers would each commit their own
// view, and the last rename wins.
//
// It imports only pluginapi and core of Stevedore, as any third-party
// transport can.
package ziplayout

import (
	"context"
	"fmt"
	"os"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// Transport is the transport name served: endpoints are "zip:PATH[:REF]".
const Transport = "zip"

// version is reported by the plugin (pluginapi.Versioner).
const version = "0.1.0"

// Plugin serves the zip transport. It holds no state: every Open stands
// alone.
type Plugin struct{}

// New returns the plugin.
func New() *Plugin { return &Plugin{} }

var (
	_ pluginapi.Plugin    = (*Plugin)(nil)
	_ pluginapi.Versioner = (*Plugin)(nil)
)

// Transports implements pluginapi.Plugin.
func (*Plugin) Transports() []string { return []string{Transport} }

// Version implements pluginapi.Versioner.
func (*Plugin) Version() string { return version }

// Open implements pluginapi.Plugin: ModeRead opens an existing archive as a
// Source; ModeWrite opens (or starts) one as a Destination, keeping what it
// already holds.
func (*Plugin) Open(ctx context.Context, req pluginapi.OpenRequest) (pluginapi.Endpoint, error) {
	if req.Transport != Transport {
		return nil, fmt.Errorf("transport %q is not %q: %w", req.Transport, Transport, core.ErrUnsupported)
	}
	if req.Location == "" {
		return nil, fmt.Errorf("zip: empty path: %w", core.ErrInvalid)
	}
	switch req.Mode {
	case pluginapi.ModeRead:
		a, err := openArchive(req.Location)
		if err != nil {
			return nil, err
		}
		return &reader{a: a}, nil
	case pluginapi.ModeWrite:
		return openWriter(req.Location)
	}
	return nil, fmt.Errorf("zip %s: mode %s: %w", req.Location, req.Mode, core.ErrInvalid)
}

// pathErr names the archive and maps a missing file to core.ErrNotFound.
func pathErr(path string, err error) error {
	if os.IsNotExist(err) {
		return fmt.Errorf("zip %s: %w", path, core.ErrNotFound)
	}
	return fmt.Errorf("zip %s: %w", path, err)
}
