package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/stevedore-oci/stevedore/core/platform"
	"github.com/stevedore-oci/stevedore/host"
)

func newInspectCmd() *cobra.Command {
	var (
		raw, config, noTags bool
		plat                string
		tf                  transportFlags
	)
	cmd := &cobra.Command{
		Use:   "inspect [flags] IMAGE",
		Short: "Show an image's digest, platform, layers, labels and tags (skopeo-compatible JSON)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := getHost()
			if err != nil {
				return err
			}
			opts := host.InspectOptions{Options: tf.options(cmd.Flags(), "", nil), NoTags: noTags || raw || config}
			if plat != "" {
				p, err := platform.Parse(plat)
				if err != nil {
					return err
				}
				opts.Platform = &p
			}
			if raw && !config {
				return printRaw(cmd, h, args[0], opts)
			}
			res, err := h.Inspect(cmd.Context(), args[0], opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if config {
				if raw {
					_, err = out.Write(res.ConfigRaw)
					return err
				}
				var v any
				if err := json.Unmarshal(res.ConfigRaw, &v); err != nil {
					return fmt.Errorf("config of %s is not JSON: %w", args[0], err)
				}
				return writeJSON(out, v)
			}
			return writeJSON(out, res.Info)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&raw, "raw", false, "print the manifest (or with --config the config) exactly as stored")
	fs.BoolVar(&config, "config", false, "print the image config")
	fs.BoolVarP(&noTags, "no-tags", "n", false, "do not list the repository's tags")
	fs.StringVar(&plat, "platform", "", "on an index, inspect the image for OS/ARCH[/VARIANT] (default: this host's)")
	tf.register(fs, "", "")
	return cmd
}

// printRaw prints the top-level manifest without needing a config, so it
// works on artifacts and indexes alike.
func printRaw(cmd *cobra.Command, h *host.Host, image string, opts host.InspectOptions) error {
	raw, err := h.RawManifest(cmd.Context(), image, opts.Options)
	if err != nil {
		return err
	}
	_, err = cmd.OutOrStdout().Write(raw)
	return err
}
