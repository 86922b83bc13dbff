// Command stevedore-transport-docker is the docker:// transport plugin. The
// logic lives in plugins/docker/registry.
package main

import (
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/plugins/docker/registry"
)

func main() {
	pluginapi.Serve(registry.New())
}
