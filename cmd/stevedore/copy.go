package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/core/platform"
	"github.com/stevedore-oci/stevedore/host"
)

func newCopyCmd() *cobra.Command {
	var (
		all                  bool
		platforms            []string
		overrideOS, overArch string
		overVariant          string
		jobs                 int
		digestFile           string
		quiet                bool
		progressMode         string
		streamOnly           bool
		removeSignatures     bool
		force                bool
		format               string
		multiArch            string
		preserveDigests      bool
		retries              int
		retryDelay           time.Duration
		src, dst, global     transportFlags
	)
	cmd := &cobra.Command{
		Use:   "copy [flags] SOURCE DESTINATION",
		Short: "Copy an image or index between transports, digests preserved",
		Long: `Copy an image from SOURCE to DESTINATION. Both are TRANSPORT:LOCATION[:REF]:
  docker://NAME[:TAG|@DIGEST]  oci:PATH[:REF]  oci-archive:PATH[:REF]
  docker-archive:PATH[:NAME:TAG|:@INDEX]  dir:PATH  static:PATH[:NAME:TAG]
On an index, the host platform's image is copied unless --all or --platform.
An image that is not an index is copied as it is, but with --platform it must
be for every platform named (its config says which), or the copy fails.
Signatures (dir: signature-N files) are copied when the destination can store
them; otherwise they are dropped with one warning (skopeo refuses instead).
--remove-signatures drops them without reading them and without the warning.
When the destination already holds the image under DESTINATION's tag or
digest, nothing is written (one request per side on registries); --force
goes through the image anyway: every manifest is written again, and every
blob the destination lacks (a blob it has is not compared byte by byte).
Manifests are written as the source has them. --format oci or --format v2s2
writes them in that format (layers and config keep their digests; a
converted manifest has a new one). A destination that refuses a manifest's
type (zot takes only OCI, some registries only Docker schema 2) gets the
image in the other format, with a warning, unless --preserve-digests.
The resulting manifest digest is printed on stdout.`,
		Example: `  stevedore copy oci:./layout:v1 oci:./other:v1
  stevedore copy --all docker://registry.example/app:1.0 oci-archive:app.tar
  stevedore copy --platform linux/arm64 --platform linux/amd64 docker://alpine docker://127.0.0.1:5000/alpine`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var (
				want []ocispec.Platform
				err  error
			)
			if err := checkAtLeast(cmd.Flags(), map[string]float64{"jobs": 1, "retry-times": 0}); err != nil {
				return err
			}
			for _, s := range platforms {
				for _, one := range strings.Split(s, ",") {
					p, err := platform.Parse(one)
					if err != nil {
						return err
					}
					want = append(want, p)
				}
			}
			var override string // the first --override-* flag given, for errors
			for _, f := range []string{"override-os", "override-arch", "override-variant"} {
				if override == "" && cmd.Flags().Changed(f) {
					override = "--" + f
				}
			}
			if override != "" && len(want) > 0 {
				// Together they would make an index of both platforms.
				return fmt.Errorf("%s and --platform exclude each other: give every platform with --platform", override)
			}
			if overrideOS != "" || overArch != "" || overVariant != "" {
				// skopeo's --override-* flags select one platform.
				d := platform.Default()
				if overrideOS != "" {
					d.OS = overrideOS
				}
				if overArch != "" {
					d.Architecture = overArch
				}
				d.Variant = overVariant
				want = append(want, platform.Normalize(d))
			}
			switch multiArch {
			case "", "system":
			case "all":
				all = true
			case "index-only":
				return fmt.Errorf("--multi-arch index-only: copying an index without its images is not supported (registries refuse an index whose images they lack)")
			default:
				return fmt.Errorf("--multi-arch %q: want system, all or index-only", multiArch)
			}
			if all && len(want) > 0 {
				allFlag, platformFlag := "--all", "--platform"
				if !cmd.Flags().Changed("all") {
					allFlag = "--multi-arch all"
				}
				if override != "" {
					platformFlag = override
				}
				return fmt.Errorf("%s and %s exclude each other", allFlag, platformFlag)
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
			fs := cmd.Flags()
			opts := host.CopyOptions{
				Format:          mf,
				PreserveDigests: preserveDigests,
				All:             all,
				Platforms:       want,
				// skopeo's --override-* pick from an index; an image
				// of another platform is copied as it is.
				PlatformsPickOnly: override != "",
				Jobs:              jobs,
				SrcOptions:        src.options(fs, "src-", &global),
				DstOptions:        dst.options(fs, "dest-", &global),
				StreamOnly:        streamOnly,
				RemoveSignatures:  removeSignatures,
				Force:             force,
				Retries:           retries,
				RetryDelay:        retryDelay,
			}
			prog, err := newProgress(progressMode, quiet, os.Stderr)
			if err != nil {
				return err
			}
			switch {
			case prog.json != nil:
				opts.OnRetry = func(attempt int, wait time.Duration, err error) {
					prog.json.Encode(map[string]any{"kind": "copy-retry", "attempt": attempt, "waitSeconds": wait.Seconds(), "error": oneLine(err.Error())})
				}
			case !quiet:
				opts.OnRetry = func(attempt int, wait time.Duration, err error) {
					fmt.Fprintf(os.Stderr, "stevedore: attempt %d failed, retrying in %s: %v\n", attempt, wait, err)
				}
			}
			opts.Progress = prog.event
			res, err := h.Copy(cmd.Context(), args[0], args[1], opts)
			prog.finish(res, err)
			if err != nil {
				return err
			}
			if err := printResult(cmd, res.Descriptor.Digest); err != nil {
				return err
			}
			if digestFile != "" {
				if err := os.WriteFile(digestFile, []byte(res.Descriptor.Digest.String()), 0o644); err != nil {
					return fmt.Errorf("--digestfile: %w", err)
				}
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.BoolVarP(&all, "all", "a", false, "copy every image of an index and the index itself")
	fs.StringSliceVar(&platforms, "platform", nil, "copy the image for OS/ARCH[/VARIANT] (repeatable; several make a smaller index; a platform the index or single-platform image lacks fails the copy)")
	fs.StringVar(&overrideOS, "override-os", "", "skopeo compatibility: pick this OS on an index (an image of another OS is copied as it is)")
	fs.StringVar(&overArch, "override-arch", "", "skopeo compatibility: pick this architecture on an index (an image of another one is copied as it is)")
	fs.StringVar(&multiArch, "multi-arch", "", "skopeo compatibility: system (the host's platform; the default) or all (--all)")
	fs.StringVar(&overVariant, "override-variant", "", "skopeo compatibility: pick this variant on an index")
	fs.IntVarP(&jobs, "jobs", "j", 4, "blobs copied at once")
	fs.StringVar(&digestFile, "digestfile", "", "also write the resulting manifest digest to this file")
	fs.BoolVarP(&quiet, "quiet", "q", false, "print nothing on stderr except errors")
	fs.StringVar(&progressMode, "progress", "auto", "progress on stderr: auto (bars on a terminal, none otherwise), bars, json, none")
	fs.BoolVar(&removeSignatures, "remove-signatures", false, "do not copy signatures (and do not warn when the destination cannot store them)")
	fs.IntVar(&retries, "retry-times", 0, "try the copy this many more times after a temporary failure (429, 5xx, broken connection) that the transport's own retries did not get past")
	fs.DurationVar(&retryDelay, "retry-delay", time.Second, "wait before the first retry, doubled for each further one")
	fs.StringVarP(&format, "format", "f", "", "write manifests as oci or v2s2 (Docker schema 2); default: as the source has them")
	fs.BoolVar(&preserveDigests, "preserve-digests", false, "fail rather than change a manifest (no conversion, even when the destination refuses its type)")
	fs.BoolVar(&force, "force", false, "write every manifest, and every blob the destination lacks, even when it already holds the image under that reference")
	fs.BoolVar(&streamOnly, "stream-only", false, "move every blob through the host even where a local file could be linked")
	fs.MarkHidden("stream-only")
	src.register(fs, "src-", "source")
	dst.register(fs, "dest-", "destination")
	global.registerBoth(fs)
	return cmd
}

// progress renders copy events on stderr.
type progress struct {
	event  func(host.Event)
	finish func(*host.CopyResult, error)
	json   *json.Encoder // --progress=json: other messages go there too
}

func newProgress(mode string, quiet bool, w *os.File) (*progress, error) {
	if quiet {
		mode = "none"
	}
	switch mode {
	case "auto":
		if isTerminal(w) {
			return newBars(w), nil
		}
		return &progress{event: nil, finish: func(*host.CopyResult, error) {}}, nil
	case "bars":
		return newBars(w), nil
	case "json":
		enc := json.NewEncoder(w)
		var mu = make(chan struct{}, 1)
		return &progress{
			event: func(e host.Event) {
				if e.Kind == host.BlobProgress {
					return
				}
				mu <- struct{}{}
				enc.Encode(e)
				<-mu
			},
			finish: func(res *host.CopyResult, err error) {
				if res != nil {
					done := map[string]any{"kind": "copy-done", "digest": res.Descriptor.Digest, "blobsCopied": res.BlobsCopied,
						"blobsSkipped": res.BlobsSkipped, "blobsMounted": res.BlobsMounted, "bytesCopied": res.BytesCopied, "upToDate": res.UpToDate, "seconds": res.Duration.Seconds()}
					if res.Converted != "" {
						done["convertedTo"] = res.Converted
					}
					enc.Encode(done)
				}
				if err != nil {
					// The failure as the last JSON line too, and not
					// again as text (a reader of JSON lines got one it
					// could not parse).
					enc.Encode(map[string]any{"kind": "copy-failed", "error": oneLine(err.Error())})
					errorReported.Store(true)
				}
			},
			json: enc,
		}, nil
	case "none":
		return &progress{finish: func(*host.CopyResult, error) {}}, nil
	}
	return nil, fmt.Errorf("--progress %q: want auto, bars, json or none", mode)
}
