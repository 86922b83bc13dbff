package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/stevedore-oci/stevedore/core/platform"
	"github.com/stevedore-oci/stevedore/host"
)

func newInspectCmd() *cobra.Command {
	var (
		raw, config, noTags bool
		plat, format        string
		tf                  transportFlags
	)
	cmd := &cobra.Command{
		Use:   "inspect [flags] IMAGE",
		Short: "Show an image's digest, platform, layers, labels and tags (skopeo-compatible JSON)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var tmpl *template.Template
			if format != "" {
				if raw {
					return fmt.Errorf("--format and --raw exclude each other")
				}
				var err error
				if tmpl, err = template.New("format").Funcs(formatFuncs).Parse(format); err != nil {
					return fmt.Errorf("--format: %w", err)
				}
			}
			h, err := getHost()
			if err != nil {
				return err
			}
			// A template that cannot print the tags does not need the
			// tag list (a request, and a long one on big repositories).
			opts := host.InspectOptions{Options: tf.options(cmd.Flags(), "", nil), NoTags: noTags || raw || config || (tmpl != nil && !mayUseTags(tmpl))}
			// A template printing only the name, digest or tags reads no
			// manifest or config: one HEAD on a registry, as crane digest.
			opts.DigestOnly = tmpl != nil && !raw && !config && !needsImage(tmpl)
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
				if tmpl != nil {
					// Go field names, as skopeo's --config --format.
					var img ocispec.Image
					if err := json.Unmarshal(res.ConfigRaw, &img); err != nil {
						return fmt.Errorf("config of %s is not an image config: %w", args[0], err)
					}
					return execFormat(out, tmpl, img)
				}
				var v any
				if err := json.Unmarshal(res.ConfigRaw, &v); err != nil {
					return fmt.Errorf("config of %s is not JSON: %w", args[0], err)
				}
				return writeJSON(out, v)
			}
			if tmpl != nil {
				return execFormat(out, tmpl, res.Info)
			}
			return writeJSON(out, res.Info)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&raw, "raw", false, "print the manifest (or with --config the config) exactly as stored")
	fs.BoolVar(&config, "config", false, "print the image config")
	fs.BoolVarP(&noTags, "no-tags", "n", false, "do not list the repository's tags")
	fs.StringVar(&plat, "platform", "", "on an index, inspect the image for OS/ARCH[/VARIANT] (default: this host's)")
	fs.StringVarP(&format, "format", "f", "", "print with this Go template instead of JSON, as skopeo does ('{{.Digest}}', '{{join .RepoTags \",\"}}'; with --config the config's fields, '{{.Architecture}}'); functions: json, join, lower, upper. A template printing only Name, Digest or RepoTags reads no manifest or config")
	tf.register(fs, "", "")
	return cmd
}

// formatFuncs are the functions --format templates may call.
var formatFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":  func(list []string, sep string) string { return strings.Join(list, sep) },
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
}

// mayUseTags reports whether a --format template may print RepoTags.
func mayUseTags(tmpl *template.Template) bool {
	return mayUse(tmpl, func(f string) bool { return f == "RepoTags" })
}

// needsImage reports whether a --format template may print anything but
// Name, Digest and RepoTags, which need no manifest or config.
func needsImage(tmpl *template.Template) bool {
	return mayUse(tmpl, func(f string) bool { return f != "Name" && f != "Digest" && f != "RepoTags" })
}

// mayUse reports whether a --format template may print a field for which
// field is true: it names the field, or uses the whole value (".", "$")
// where it could. Any node it does not know counts as a use.
func mayUse(tmpl *template.Template, field func(string) bool) bool {
	var walk func(n parse.Node) bool
	walk = func(n parse.Node) bool {
		switch n := n.(type) {
		case nil:
			return false
		case *parse.ListNode:
			return n != nil && slices.ContainsFunc(n.Nodes, walk)
		case *parse.TextNode, *parse.CommentNode, *parse.BoolNode, *parse.NumberNode, *parse.StringNode, *parse.NilNode, *parse.IdentifierNode, *parse.BreakNode, *parse.ContinueNode:
			return false
		case *parse.ActionNode:
			return walk(n.Pipe)
		case *parse.IfNode:
			return walkBranch(walk, &n.BranchNode)
		case *parse.RangeNode:
			return walkBranch(walk, &n.BranchNode)
		case *parse.WithNode:
			return walkBranch(walk, &n.BranchNode)
		case *parse.TemplateNode:
			return true // another template: not followed
		case *parse.PipeNode:
			return n != nil && slices.ContainsFunc(n.Cmds, func(c *parse.CommandNode) bool { return walk(c) })
		case *parse.CommandNode:
			return slices.ContainsFunc(n.Args, walk)
		case *parse.FieldNode:
			return slices.ContainsFunc(n.Ident, field)
		case *parse.ChainNode:
			return slices.ContainsFunc(n.Field, field) || walk(n.Node)
		case *parse.VariableNode:
			// $ alone is the whole value; $x.F names F; $x alone is what
			// its declaration's pipeline (walked where it stands) gave.
			return slices.ContainsFunc(n.Ident[1:], field) || (len(n.Ident) == 1 && n.Ident[0] == "$")
		case *parse.DotNode:
			return true
		}
		return true
	}
	return walk(tmpl.Tree.Root)
}

func walkBranch(walk func(parse.Node) bool, b *parse.BranchNode) bool {
	return walk(b.Pipe) || walk(b.List) || walk(b.ElseList)
}

// execFormat prints v through tmpl, ending with a newline.
func execFormat(w io.Writer, tmpl *template.Template, v any) error {
	var b strings.Builder
	if err := tmpl.Execute(&b, v); err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	s := b.String()
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	_, err := io.WriteString(w, s)
	return err
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
