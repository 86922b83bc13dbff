package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/host"
	"github.com/stevedore-oci/stevedore/host/syncspec"
)

func init() { extraCommands = append(extraCommands, newSyncCmd) }

func newSyncCmd() *cobra.Command {
	var (
		file                string
		srcKind, dstKind    string
		scoped, prefix      bool
		all                 bool
		platforms           []string
		referrers           bool
		immutable           []string
		allow, deny         []string
		semverC             string
		newest              int
		parallel, jobs      int
		dryRun, keepGoing   bool
		format              string
		preserveDigests     bool
		prune, quiet        bool
		reportFile          string
		retries             int
		rate                float64
		concurrent          int
		src, dst, global    transportFlags
		overrideOS, overArc string
	)
	cmd := &cobra.Command{
		Use:   "sync [flags] (-f FILE.yaml [DESTINATION] | SOURCE TARGET)",
		Short: "Mirror images declared in a YAML file, or one repository, incrementally",
		Long: `sync mirrors images and repositories. Per tag it asks the source and the target
for the manifest digest (one HEAD each on registries) and copies only what
differs; blobs the target has are never sent again, and a blob one repository of
the target registry received is mounted into the others.

  stevedore sync -f mirror.yaml              stevedore's format (docs/sync.md)
  stevedore sync -f skopeo.yaml REGISTRY/DIR skopeo's sync YAML, same naming as skopeo
  stevedore sync SOURCE TARGET               one repository (all or filtered tags)
                                             or one image (SOURCE names a tag/digest)

SOURCE and TARGET are docker names (registry.example/app, docker://...) or any
transport (oci:/srv/layout). skopeo's form also works:
  stevedore sync --src docker --dest docker registry.example/app mirror.local/team
  stevedore sync --src yaml --dest docker skopeo.yaml mirror.local/team

Indexes are mirrored whole (every platform, digests kept) unless --platform.
With --platform, an image that is not an index and whose config names none of
the platforms fails, as an index holding none of them does.
Command-line settings are defaults: a sync file's own settings win.
A summary goes to stderr; --report writes every image's outcome as JSON. The
exit status is 1 when any image failed (with --keep-going, after trying the rest).`,
		Example: `  stevedore sync -f mirror.yaml --report report.json
  stevedore sync --dry-run docker://docker.io/library/alpine registry.local/mirror/alpine
  stevedore sync --semver '>=3.18' --newest 3 docker.io/library/alpine oci:/srv/alpine`,
		Args: cobra.RangeArgs(0, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			fs := cmd.Flags()
			if err := checkAtLeast(fs, map[string]float64{"jobs": 1, "parallel": 1, "newest": 0, "retry-times": 0, "registry-rate": 0, "registry-concurrency": 0}); err != nil {
				return err
			}
			defaults := syncspec.Settings{Platforms: platforms, Immutable: immutable}
			if (overrideOS != "" || overArc != "") && len(platforms) > 0 {
				// Together they would mirror an index of both platforms.
				return fmt.Errorf("--override-os/--override-arch and --platform exclude each other: give every platform with --platform")
			}
			if overrideOS != "" || overArc != "" {
				// skopeo's --override-os/--override-arch pick one platform.
				goos, arch := overrideOS, overArc
				if goos == "" {
					goos = "linux"
				}
				if arch == "" {
					return fmt.Errorf("--override-os needs --override-arch")
				}
				defaults.Platforms = append(defaults.Platforms, goos+"/"+arch)
				// As in skopeo, they pick from an index; an image of
				// another platform is mirrored as it is.
				defaults.PlatformsPickOnly = true
			}
			if fs.Changed("all") {
				defaults.All = &all
			}
			if fs.Changed("referrers") {
				defaults.Referrers = &referrers
			}
			if len(allow)+len(deny) > 0 || semverC != "" || newest > 0 {
				defaults.Tags = &syncspec.TagRules{Allow: allow, Deny: deny, Semver: semverC, Newest: newest}
			}
			popts := syncspec.Options{
				SrcOptions: src.options(fs, "src-", &global),
				DstOptions: dst.options(fs, "dest-", &global),
				Defaults:   defaults,
				Scoped:     scoped,
			}
			if prefix && (file != "" || srcKind != "") {
				return fmt.Errorf("--prefix is for SOURCE TARGET without -f or --src")
			}
			res, err := syncJobs(file, srcKind, dstKind, args, popts, prefix)
			if err != nil {
				return err
			}
			var mf manifest.Format
			if format != "" {
				if mf, err = manifest.ParseFormat(format); err != nil {
					return fmt.Errorf("--format: %w", err)
				}
			}
			globalQuiet = quiet
			h, err := getHost()
			if err != nil {
				return err
			}
			opts := host.SyncOptions{
				Format:          mf,
				PreserveDigests: preserveDigests,
				Parallel:        parallel,
				Jobs:            jobs,
				DryRun:          dryRun,
				KeepGoing:       keepGoing,
				Prune:           prune,
				Retries:         retries,
				Limits:          res.Limits,
				DefaultLimit:    host.RegistryLimit{RequestsPerSecond: rate, MaxConcurrent: concurrent},
			}
			stderr := cmd.ErrOrStderr()
			stdout := cmd.OutOrStdout()
			opts.OnImage = func(r host.SyncImageResult) {
				if dryRun && dryRunListed(r) {
					fmt.Fprintln(stdout, imageLine(r))
					return
				}
				if !quiet || r.Action == host.ActionFailed {
					fmt.Fprintln(stderr, imageLine(r))
				}
			}
			rep, syncErr := h.Sync(cmd.Context(), res.Jobs, opts)
			if rep != nil {
				fmt.Fprintln(stderr, summaryLine(rep))
				if reportFile != "" {
					if err := writeReport(reportFile, rep); err != nil {
						if syncErr == nil {
							return err
						}
						// One line: errors.Join's newline became a bare space.
						return fmt.Errorf("%w; %w", syncErr, err)
					}
				}
			}
			return syncErr
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&file, "file", "f", "", "sync file: stevedore's format, or skopeo's (then give the DESTINATION prefix)")
	fs.StringVar(&srcKind, "src", "", "skopeo compatibility: source kind, docker or yaml")
	fs.StringVar(&dstKind, "dest", "", "skopeo compatibility: destination kind, docker")
	fs.BoolVar(&scoped, "scoped", false, "skopeo's naming: prefix targets with the full source repository name")
	fs.BoolVar(&prefix, "prefix", false, "SOURCE is a registry or prefix (oci:DIR: a tree of layouts): mirror every repository its catalog lists under TARGET, same paths")
	fs.BoolVarP(&all, "all", "a", true, "mirror indexes whole (--all=false: the host's platform only)")
	fs.StringSliceVar(&platforms, "platform", nil, "mirror only OS/ARCH[/VARIANT] of indexes (repeatable; an index or single-platform image with none of them fails)")
	fs.StringVar(&overrideOS, "override-os", "", "skopeo compatibility: pick this OS of indexes")
	fs.StringVar(&overArc, "override-arch", "", "skopeo compatibility: pick this architecture of indexes")
	fs.StringVar(&format, "format", "", "write manifests as oci or v2s2 (Docker schema 2); default: as the source has them, or the other format where the target refuses their type")
	fs.BoolVar(&preserveDigests, "preserve-digests", false, "fail an image rather than change its manifest (no conversion)")
	fs.BoolVar(&referrers, "referrers", false, "copy referrers (signatures, SBOMs) along")
	fs.StringArrayVar(&immutable, "immutable", nil, "tags matching this regex (whole tag) are skipped when the target has them (repeatable)")
	fs.StringArrayVar(&allow, "allow", nil, "copy only tags matching this regex (whole tag; repeatable)")
	fs.StringArrayVar(&deny, "deny", nil, "skip tags matching this regex (whole tag; repeatable)")
	fs.StringVar(&semverC, "semver", "", "copy only tags that are versions satisfying this constraint, e.g. '>=1.2 <2'")
	fs.IntVar(&newest, "newest", 0, "copy only the N newest of the selected tags (by version)")
	fs.IntVar(&parallel, "parallel", 4, "images copied at once")
	fs.IntVarP(&jobs, "jobs", "j", 4, "blobs copied at once per repository")
	fs.BoolVar(&dryRun, "dry-run", false, "list what would be copied (and pruned, and referrers of images up to date) on stdout; write nothing")
	fs.BoolVar(&keepGoing, "keep-going", false, "carry on after a failed image (the exit status is still 1)")
	fs.BoolVar(&prune, "prune", false, "delete target tags the filters select that the source no longer has")
	fs.StringVar(&reportFile, "report", "", "write the outcome of every image as JSON to this file")
	fs.IntVar(&retries, "retry-times", 1, "retry an image this many times after a temporary failure (429, 5xx, broken connection)")
	fs.Float64Var(&rate, "registry-rate", 0, "at most this many requests per second to each registry (0: no limit)")
	fs.IntVar(&concurrent, "registry-concurrency", 0, "at most this many requests in flight to each registry (0: no limit)")
	fs.BoolVarP(&quiet, "quiet", "q", false, "print only failures and the summary on stderr")
	src.register(fs, "src-", "source")
	dst.register(fs, "dest-", "destination")
	global.registerBoth(fs)
	return cmd
}

// syncJobs turns the command line into jobs.
func syncJobs(file, srcKind, dstKind string, args []string, opts syncspec.Options, prefix bool) (*syncspec.Result, error) {
	if dstKind != "" && dstKind != "docker" {
		return nil, fmt.Errorf("--dest %s: only docker is supported; give any transport as TARGET (oci:/dir) without --src/--dest", dstKind)
	}
	switch {
	case file != "" && srcKind != "" && srcKind != "yaml":
		return nil, fmt.Errorf("-f and --src %s exclude each other", srcKind)
	case srcKind == "yaml":
		if file == "" && len(args) == 2 {
			file, args = args[0], args[1:]
		}
		if file == "" || len(args) != 1 {
			return nil, fmt.Errorf("--src yaml: want FILE.yaml DESTINATION")
		}
		fallthrough
	case file != "":
		if len(args) > 1 {
			return nil, fmt.Errorf("-f %s takes at most a DESTINATION argument, got %d", file, len(args))
		}
		if len(args) == 1 {
			opts.Target = args[0]
		}
		return syncspec.Load(file, opts)
	case srcKind == "docker":
		if len(args) != 2 {
			return nil, fmt.Errorf("--src docker: want SOURCE DESTINATION")
		}
		// skopeo: DESTINATION is a prefix; the repository keeps its last
		// path element (or its full name with --scoped).
		s, err := syncspec.ParseEndpoint(strings.TrimPrefix(args[0], "docker://"))
		if err != nil {
			return nil, err
		}
		suffix := path.Base(s.Location)
		if opts.Scoped {
			suffix = s.Location
		}
		target := strings.TrimRight(strings.TrimPrefix(args[1], "docker://"), "/") + "/" + suffix
		return oneEntry(args[0], target, opts, false)
	case srcKind != "":
		return nil, fmt.Errorf("--src %s: want docker or yaml (any transport works as SOURCE without --src)", srcKind)
	}
	if len(args) != 2 {
		return nil, fmt.Errorf("give -f FILE.yaml, or SOURCE and TARGET: %w", core.ErrInvalid)
	}
	return oneEntry(args[0], args[1], opts, prefix)
}

func oneEntry(source, target string, opts syncspec.Options, prefix bool) (*syncspec.Result, error) {
	f := syncspec.File{Sync: []syncspec.Entry{{Source: source, Target: target}}}
	if prefix {
		f.Sync[0].Type = syncspec.TypeRegistryPrefix
		return f.Jobs(opts)
	}
	s, err := syncspec.ParseEndpoint(source)
	if err != nil {
		return nil, err
	}
	if s.Image && opts.Defaults.Tags != nil {
		return nil, fmt.Errorf("--allow, --deny, --semver and --newest filter repositories; %s names one image", source)
	}
	if s.Image {
		// A tag given on the source names a single image; the target may
		// name its own tag.
		f.Sync[0].Type = syncspec.TypeImage
	}
	return f.Jobs(opts)
}

func imageLine(r host.SyncImageResult) string {
	var b strings.Builder
	b.WriteString(string(r.Action))
	if r.Reason != "" && r.Action != host.ActionFailed {
		b.WriteString(" (" + r.Reason + ")")
	}
	if r.Source != "" {
		b.WriteString(" " + r.Source + " ->")
	}
	b.WriteString(" " + r.Target)
	if r.TargetDigest != "" {
		b.WriteString(" " + r.TargetDigest.String())
	}
	if r.Referrers > 0 {
		fmt.Fprintf(&b, " (+%d referrers)", r.Referrers)
	}
	if r.Error != "" {
		b.WriteString(": " + r.Error)
	}
	return b.String()
}

// dryRunListed says whether a dry run lists r on stdout, with what it
// would write: images to copy, tags to prune, and images up to date whose
// referrers a real run would copy.
func dryRunListed(r host.SyncImageResult) bool {
	return r.Action == host.ActionWouldCopy || r.Action == host.ActionWouldPrune ||
		(r.Action == host.ActionSkipped && r.Referrers > 0)
}

func summaryLine(rep *host.SyncReport) string {
	d := rep.Duration.Round(time.Millisecond)
	if rep.DryRun {
		s := fmt.Sprintf("sync (dry run): %d to copy, %d up to date, %d failed, %d to prune",
			rep.WouldCopy, rep.Skipped, rep.Failed, rep.WouldPrune)
		if rep.Referrers > 0 {
			s += fmt.Sprintf(", %d referrers to copy", rep.Referrers)
		}
		return s + fmt.Sprintf(", in %s", d)
	}
	s := fmt.Sprintf("sync: %d copied, %d skipped, %d failed", rep.Copied, rep.Skipped, rep.Failed)
	if rep.Cancelled > 0 {
		s += fmt.Sprintf(", %d cancelled", rep.Cancelled)
	}
	if rep.Pruned > 0 {
		s += fmt.Sprintf(", %d pruned", rep.Pruned)
	}
	if rep.Referrers > 0 {
		s += fmt.Sprintf(", %d referrers", rep.Referrers)
	}
	return s + fmt.Sprintf("; %d blobs (%s) sent, %d mounted, %d already there; in %s",
		rep.BlobsCopied, humanBytes(rep.BytesSent), rep.BlobsMounted, rep.BlobsSkipped, d)
}

// writeReport writes the report atomically enough for a CI artefact:
// to a temporary file renamed into place.
func writeReport(file string, rep *host.SyncReport) error {
	tmp := file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	err = writeReportTo(f, rep)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, file)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("--report %s: %w", file, err)
	}
	return nil
}

func writeReportTo(w io.Writer, rep *host.SyncReport) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(rep)
}
