// Command stevedore-transport-oci is the Stevedore transport plugin for OCI
// image layouts (oci:DIR[:REF]). The transport itself lives in package
// ocilayout.
package main

import (
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/plugins/oci-layout/ocilayout"
)

func main() { pluginapi.Serve(ocilayout.New()) }
