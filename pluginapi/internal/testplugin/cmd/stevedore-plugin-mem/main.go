// Command stevedore-plugin-mem serves the in-memory test transport; the
// pluginapi tests launch it as a real go-plugin process, and the CLI's
// end-to-end tests install it as stevedore-transport-mem.
//
// STEVEDORE_MEM_OPTIONS (k=v,k=v) sets default Open options, e.g. fault
// injection for a whole CLI run (see package testplugin). The extra key
// stdout-garbage=true prints a line to stdout before Serve, breaking the
// go-plugin handshake as a careless plugin would; claims=T+U lists
// transports T and U among those served (a plugin taking over others').
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/stevedore-oci/stevedore/pluginapi"
	"github.com/stevedore-oci/stevedore/pluginapi/internal/testplugin"
)

func main() {
	p := testplugin.New()
	p.Defaults = map[string]string{}
	for _, kv := range strings.Split(os.Getenv("STEVEDORE_MEM_OPTIONS"), ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			p.Defaults[k] = v
		}
	}
	if c := p.Defaults["claims"]; c != "" {
		p.Claims = strings.Split(c, "+")
	}
	if p.Defaults["stdout-garbage"] == "true" {
		fmt.Println("hello from a plugin that prints before its handshake")
	}
	pluginapi.Serve(p)
}
