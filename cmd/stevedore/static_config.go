package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/staticfmt"
)

// newStaticConfigCmd prints a web server configuration that serves a
// static: tree as a read-only registry.
func newStaticConfigCmd() *cobra.Command {
	var nginx, caddy bool
	var listen string
	cmd := &cobra.Command{
		Use:   "static-config --nginx|--caddy [--listen HOST:PORT] DIR",
		Short: "Print an nginx or Caddy configuration serving a static: tree as a registry",
		Long: `Print a ready web server configuration that serves the static: tree DIR
as a read-only registry, with the Content-Type, Docker-Content-Digest and
Docker-Distribution-Api-Version headers pull clients need. The
configuration includes map files kept in DIR/.stevedore: reload the server
after copying new images into the tree.`,
		Example: "  stevedore copy oci:./layout:v1 static:/srv/registry:app:v1\n" +
			"  stevedore static-config --nginx --listen 0.0.0.0:8080 /srv/registry > /etc/nginx/nginx.conf\n" +
			"  skopeo copy --src-tls-verify=false docker://HOST:8080/app:v1 oci:./out:v1",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if nginx == caddy {
				return errors.New("static-config: give exactly one of --nginx or --caddy")
			}
			if dir, ok := strings.CutPrefix(args[0], "static:"); ok {
				// An endpoint, as copy takes: the hint then said to copy
				// to "static:static:DIR:NAME:TAG".
				return fmt.Errorf("static-config takes the tree's directory, not an endpoint: give %s: %w", dir, core.ErrInvalid)
			}
			gen := staticfmt.NginxConfig
			if caddy {
				gen = staticfmt.CaddyConfig
			}
			conf, err := gen(args[0], listen)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), conf)
			return err
		},
	}
	cmd.Flags().BoolVar(&nginx, "nginx", false, "print an nginx.conf")
	cmd.Flags().BoolVar(&caddy, "caddy", false, "print a Caddyfile")
	cmd.Flags().StringVar(&listen, "listen", staticfmt.DefaultListen, "address the server listens on")
	return cmd
}
