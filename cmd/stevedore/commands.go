package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "    ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func newListTagsCmd() *cobra.Command {
	var tf transportFlags
	cmd := &cobra.Command{
		Use:     "list-tags [flags] LOCATION",
		Short:   "List the tags of a repository or layout (skopeo-compatible JSON)",
		Example: "  stevedore list-tags docker://127.0.0.1:5000/app\n  stevedore list-tags oci:./layout",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := getHost()
			if err != nil {
				return err
			}
			tags, err := h.ListTags(cmd.Context(), args[0], tf.options(cmd.Flags(), "", nil))
			if err != nil {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), tags)
		},
	}
	tf.register(cmd.Flags(), "", "")
	return cmd
}

func newDeleteCmd() *cobra.Command {
	var tf transportFlags
	cmd := &cobra.Command{
		Use:   "delete [flags] IMAGE",
		Short: "Delete a tag, or a manifest by digest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := getHost()
			if err != nil {
				return err
			}
			return h.Delete(cmd.Context(), args[0], tf.options(cmd.Flags(), "", nil))
		},
	}
	tf.register(cmd.Flags(), "", "")
	return cmd
}

func newManifestDigestCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "manifest-digest FILE",
		Short: "Print the digest of a manifest file",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := host.ManifestDigest(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), d)
			return nil
		},
	}
}

func newPluginsCmd() *cobra.Command {
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List transport plugins: transports served, protocol, path, sha256, shadowed copies",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := getHost()
			if err != nil {
				return err
			}
			type row struct {
				Name       string   `json:"name"`
				Transports []string `json:"transports"`
				Protocols  []int    `json:"protocolVersions"`
				Version    string   `json:"version,omitempty"`
				Path       string   `json:"path"`
				SHA256     string   `json:"sha256"`
				Shadowed   []string `json:"shadowed,omitempty"`
				Error      string   `json:"error,omitempty"`
			}
			var rows []row
			for _, st := range h.Plugins(cmd.Context()) {
				r := row{Name: st.Binary.Name, Transports: st.Info.Transports, Protocols: st.Info.ProtocolVersions,
					Version: st.Info.Version, Path: st.Binary.Path, Shadowed: st.Binary.Shadowed}
				r.SHA256, _ = fileSHA256(st.Binary.Path)
				if st.Err != nil {
					r.Error = oneLine(st.Err.Error())
				}
				rows = append(rows, r)
			}
			if jsonOut {
				return writeJSON(cmd.OutOrStdout(), rows)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTRANSPORTS\tPROTOCOL\tPATH\tSHA256")
			for _, r := range rows {
				tr := strings.Join(r.Transports, ",")
				if r.Error != "" {
					tr = "ERROR: " + r.Error
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, tr, ints(r.Protocols), r.Path, r.SHA256)
				for _, s := range r.Shadowed {
					fmt.Fprintf(tw, "  (shadowed)\t\t\t%s\t\n", s)
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

func ints(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ",")
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// version is set with -ldflags "-X main.version=...".
var version = ""

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print stevedore's version and plugin protocol versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			v := version
			if v == "" {
				if bi, ok := debug.ReadBuildInfo(); ok {
					v = bi.Main.Version
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "stevedore %s\ngo %s %s/%s\nplugin protocol versions %s\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH, ints(pluginapi.ProtocolVersions))
			return nil
		},
	}
}
