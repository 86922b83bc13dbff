package main

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/mattn/go-isatty"
	"github.com/opencontainers/go-digest"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/stevedore-oci/stevedore/host"
)

func isTerminal(f *os.File) bool { return isatty.IsTerminal(f.Fd()) }

// newBars draws one bar per blob with mpb, which handles redraws and
// terminal width for us (opts: more of mpb's, for tests).
func newBars(w *os.File, opts ...mpb.ContainerOption) *progress {
	p := mpb.New(append([]mpb.ContainerOption{mpb.WithOutput(w), mpb.WithWidth(40)}, opts...)...)
	var mu sync.Mutex
	type blobBar struct {
		*mpb.Bar
		// outcome replaces the speed once the bar completes: "done", or
		// what happened instead of a transfer ("exists", "mounted").
		outcome atomic.Pointer[string]
	}
	bars := map[digest.Digest]*blobBar{}
	bar := func(e host.Event) *blobBar {
		mu.Lock()
		defer mu.Unlock()
		b, ok := bars[e.Desc.Digest]
		if !ok {
			name := e.Desc.Digest.Encoded()
			if len(name) > 12 {
				name = name[:12]
			}
			b = &blobBar{}
			speed := decor.AverageSpeed(decor.SizeB1024(0), "% .1f")
			b.Bar = p.AddBar(e.Desc.Size,
				mpb.PrependDecorators(decor.Name(name+" ", decor.WCSyncSpaceR), decor.CountersKibiByte("% .1f / % .1f")),
				mpb.AppendDecorators(decor.Any(func(s decor.Statistics) string {
					if o := b.outcome.Load(); o != nil && s.Completed {
						return *o
					}
					str, _ := speed.Decor(s)
					return str
				})),
			)
			bars[e.Desc.Digest] = b
		}
		return b
	}
	finishBar := func(e host.Event, outcome string) {
		b := bar(e)
		b.outcome.Store(&outcome)
		if outcome != "done" {
			b.SetCurrent(e.Desc.Size)
		}
		b.SetTotal(e.Desc.Size, true)
	}
	return &progress{
		event: func(e host.Event) {
			switch e.Kind {
			case host.BlobStart:
				bar(e)
			case host.BlobProgress:
				bar(e).SetCurrent(e.Bytes)
			case host.BlobDone, host.BlobLinked:
				finishBar(e, "done")
			case host.BlobSkipped:
				finishBar(e, "exists")
			case host.BlobMounted:
				finishBar(e, "mounted")
			}
		},
		finish: func(res *host.CopyResult, err error) {
			mu.Lock()
			for _, b := range bars {
				if !b.Completed() {
					b.Abort(false)
				}
			}
			mu.Unlock()
			p.Wait()
			if res != nil && res.UpToDate {
				fmt.Fprintf(w, "destination already holds %s: nothing copied\n", res.Descriptor.Digest)
			} else if res != nil {
				conv := ""
				if res.Converted != "" {
					conv = " (converted to " + string(res.Converted) + ")"
				}
				fmt.Fprintf(w, "copied %d blobs (%s), skipped %d, mounted %d, %d manifests%s in %s\n",
					res.BlobsCopied, humanBytes(res.BytesCopied), res.BlobsSkipped, res.BlobsMounted, res.Manifests, conv, res.Duration.Round(1e6))
			}
		},
	}
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
