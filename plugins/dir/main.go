// Command stevedore-transport-dir is the plugin serving the dir: transport
// (skopeo's directory format).
package main

import (
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/plugins/dir/dirtransport"
)

func main() { pluginapi.Serve(dirtransport.New(pluginapi.Logger())) }
