package archive

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// Transport names served by this plugin.
const (
	OCIArchive    = "oci-archive"
	DockerArchive = "docker-archive"
)

// Plugin serves oci-archive: and docker-archive:.
type Plugin struct{ log hclog.Logger }

// New returns the plugin; log (nil for none) receives warnings such as the
// manifest change docker-archive forces.
func New(log hclog.Logger) *Plugin {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Plugin{log: log}
}

// Transports implements pluginapi.Plugin.
func (p *Plugin) Transports() []string { return []string{OCIArchive, DockerArchive} }

// Open implements pluginapi.Plugin.
func (p *Plugin) Open(ctx context.Context, req pluginapi.OpenRequest) (pluginapi.Endpoint, error) {
	if req.Location == "" {
		return nil, fmt.Errorf("%s: empty path: %w", req.Transport, core.ErrInvalid)
	}
	switch {
	case req.Transport == OCIArchive && req.Mode == pluginapi.ModeRead:
		return openOCISource(ctx, req.Location)
	case req.Transport == OCIArchive && req.Mode == pluginapi.ModeWrite:
		return newOCIDest(ctx, req.Location)
	case req.Transport == DockerArchive && req.Mode == pluginapi.ModeRead:
		return openDockerSource(ctx, req.Location)
	case req.Transport == DockerArchive && req.Mode == pluginapi.ModeWrite:
		return newDockerDest(ctx, req.Location, p.log)
	}
	return nil, fmt.Errorf("%s:%s: transport or mode %s not served: %w", req.Transport, req.Location, req.Mode, core.ErrUnsupported)
}
