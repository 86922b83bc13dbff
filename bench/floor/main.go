// Command floor measures the least any command of this architecture can
// cost: a go-plugin host that starts N plugin processes speaking gRPC
// (plugins that serve nothing), makes one round trip to each (the health
// check go-plugin's Ping sends) and kills them. A Stevedore copy does all of
// that and then its work, so no copy between two plugin transports can be
// faster than this program with -plugins 2.
//
// It is its own plugin: "floor -serve" is what the host starts.
//
//	go build -o /tmp/floor ./bench/floor
//	bench/interleave.py 40 '/tmp/floor' '/tmp/floor -plugins 1' \
//	    'crane push LAYOUT REGISTRY/REPO:TAG --insecure'   # a re-push
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

var handshake = plugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "STEVEDORE_FLOOR", MagicCookieValue: "1"}

// nothing is a gRPC plugin with no service of its own; go-plugin's server
// still serves its health, controller, broker and stdio services.
type nothing struct{ plugin.Plugin }

func (nothing) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error { return nil }

func (nothing) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, nil
}

var plugins = plugin.PluginSet{"nothing": nothing{}}

func main() {
	serve := flag.Bool("serve", false, "be the plugin (the host starts it so)")
	n := flag.Int("plugins", 2, "how many plugin processes the host starts")
	flag.Parse()
	if *serve {
		plugin.Serve(&plugin.ServeConfig{HandshakeConfig: handshake, Plugins: plugins,
			GRPCServer: plugin.DefaultGRPCServer, Logger: hclog.NewNullLogger()})
		return
	}
	if err := host(*n); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

// host starts n plugins at once, pings each and kills them all.
func host(n int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	clients := make([]*plugin.Client, n)
	done := make(chan error, n)
	for i := range clients {
		c := plugin.NewClient(&plugin.ClientConfig{HandshakeConfig: handshake, Plugins: plugins,
			Cmd: exec.Command(self, "-serve"), AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
			Logger: hclog.NewNullLogger()})
		clients[i] = c
		go func() {
			rc, err := c.Client()
			if err == nil {
				err = rc.Ping()
			}
			done <- err
		}()
	}
	for range clients {
		if e := <-done; e != nil && err == nil {
			err = e
		}
	}
	for _, c := range clients {
		c.Kill()
	}
	return err
}
