// Command stevedore-transport-static is the plugin serving the static:
// transport (a registry tree for plain web servers).
package main

import (
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/plugins/static/statictree"
)

func main() { pluginapi.Serve(statictree.New(pluginapi.Logger())) }
