// Command stevedore-plugin-mem serves the in-memory test transport; the
// pluginapi tests launch it as a real go-plugin process.
package main

import (
	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/internal/testplugin"
)

func main() { pluginapi.Serve(testplugin.New()) }
