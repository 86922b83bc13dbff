package main

import (
	"context"
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

func newListRepositoriesCmd() *cobra.Command {
	var (
		tf     transportFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:     "list-repositories [flags] LOCATION",
		Aliases: []string{"catalog"},
		Short:   "List the repositories of a registry, or under a prefix of one (its catalog)",
		Long: `List the repositories of a registry (docker://HOST) or under a prefix of one
(docker://HOST/PREFIX), one location per line. The registry must serve its
catalog (GET /v2/_catalog): distribution, Harbor, zot and stevedore serve do;
Docker Hub and most cloud registries do not. oci:DIR lists the layouts in and
under DIR.`,
		Example: "  stevedore list-repositories --tls-verify=false docker://127.0.0.1:5000\n  stevedore list-repositories docker://registry.example/team",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := getHost()
			if err != nil {
				return err
			}
			list, err := h.ListRepositories(cmd.Context(), args[0], tf.options(cmd.Flags(), "", nil))
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), list)
			}
			for _, r := range list.Repositories {
				if err := printResult(cmd, r); err != nil {
					return err
				}
			}
			return nil
		},
	}
	tf.register(cmd.Flags(), "", "")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print {\"Location\": ..., \"Repositories\": [...]} instead of one per line")
	return cmd
}

func newDeleteCmd() *cobra.Command {
	var tf transportFlags
	cmd := &cobra.Command{
		Use:   "delete [flags] IMAGE",
		Short: "Delete a tag, or a manifest by digest",
		Long: `Delete a tag, or a manifest (and every tag of it) by digest.
A registry that cannot delete a tag alone (docker-registry 2.x) has the
manifest deleted and its other tags put back; that is refused when an index
of the repository lists the manifest (deleting it would break the index).
A delete is not stopped half-way by Ctrl-C: it finishes (within the plugin
call timeout) so that no tag is lost.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := getHost()
			if err != nil {
				return err
			}
			return h.Delete(context.WithoutCancel(cmd.Context()), args[0], tf.options(cmd.Flags(), "", nil))
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
			return printResult(cmd, d)
		},
	}
}

func newPluginsCmd() *cobra.Command {
	var jsonOut, checksums bool
	cmd := &cobra.Command{
		Use:   "plugins",
		Short: "List transport plugins: transports served, protocol, path, sha256, shadowed copies",
		Long: `List the transport plugins on the search path, first match of a name wins:
$STEVEDORE_PLUGIN_PATH, the directory of stevedore, $XDG_DATA_HOME/stevedore/plugins.
A binary earlier on the path overrides ("shadows") a later one of the same name.

--checksums prints the sha256 of each binary without starting any, in the pin-file
format: save it as $XDG_CONFIG_HOME/stevedore/plugins.lock (or pass --plugin-lock FILE)
and stevedore refuses any pinned plugin whose binary changes.`,
		Example: "  stevedore plugins\n  stevedore plugins --checksums > ~/.config/stevedore/plugins.lock",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if checksums {
				return printChecksums(cmd.OutOrStdout())
			}
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
			fmt.Fprintln(tw, "NAME\tTRANSPORTS\tVERSION\tPROTOCOL\tPATH\tSHA256")
			for _, r := range rows {
				tr := strings.Join(r.Transports, ",")
				if r.Error != "" {
					tr = "ERROR: " + r.Error
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, tr, r.Version, ints(r.Protocols), r.Path, r.SHA256)
				for _, s := range r.Shadowed {
					fmt.Fprintf(tw, "  (shadowed)\t\t\t\t%s\t\n", s)
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	cmd.Flags().BoolVar(&checksums, "checksums", false, "print \"SHA256  NAME\" per plugin binary (the pin-file format) without starting any")
	return cmd
}

// printChecksums writes the pin-file lines of the plugins that win on the
// search path; shadowed binaries follow as comments, by path.
func printChecksums(w io.Writer) error {
	bins := host.Discover(host.DefaultSearchPath())
	fmt.Fprintln(w, "# stevedore plugin pins: SHA256  NAME-OR-PATH (see stevedore plugins --help)")
	for _, b := range bins {
		sum, err := host.FileSHA256(b.Path)
		if err != nil {
			return fmt.Errorf("plugin %s: %w", b.Name, err)
		}
		fmt.Fprintf(w, "%s  %s\n", sum, b.Name)
		for _, sh := range b.Shadowed {
			if sum, err := host.FileSHA256(sh); err == nil {
				fmt.Fprintf(w, "# shadowed: %s  %s\n", sum, sh)
			}
		}
	}
	return nil
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

// printResult writes a line a script captures (a digest, a name): a write
// that fails is the command's failure, as inspect's and list-tags' are (copy
// exited 0 with its digest lost to a full disk).
func printResult(cmd *cobra.Command, v any) error {
	if _, err := fmt.Fprintln(cmd.OutOrStdout(), v); err != nil {
		return fmt.Errorf("write the result: %w", err)
	}
	return nil
}
