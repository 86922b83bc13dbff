// Command stevedore-transport-archive is the plugin serving the
// oci-archive: and docker-archive: transports.
package main

import (
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/plugins/archive/archive"
)

func main() { pluginapi.Serve(archive.New(pluginapi.Logger())) }
