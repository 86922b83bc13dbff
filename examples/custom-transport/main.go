// Command stevedore-transport-zip is a Stevedore transport plugin for OCI
// image layouts kept in a zip file: zip:PATH[:REF]. Build it, put the binary
// on $STEVEDORE_PLUGIN_PATH (or next to stevedore), and stevedore copies to
// and from zip files. See README.md.
package main

import (
	"github.com/stevedore-oci/stevedore/examples/custom-transport/ziplayout"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

func main() { pluginapi.Serve(ziplayout.New()) }
