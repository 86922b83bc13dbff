package main

import (
	"fmt"
	"os"
	"sync"

	"github.com/mattn/go-isatty"
	"github.com/opencontainers/go-digest"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/stevedore-oci/stevedore/host"
)

func isTerminal(f *os.File) bool { return isatty.IsTerminal(f.Fd()) }

// newBars draws one bar per blob with mpb, which handles redraws and
// terminal width for us.
func newBars(w *os.File) *progress {
	p := mpb.New(mpb.WithOutput(w), mpb.WithWidth(40))
	var mu sync.Mutex
	bars := map[digest.Digest]*mpb.Bar{}
	bar := func(e host.Event) *mpb.Bar {
		mu.Lock()
		defer mu.Unlock()
		b, ok := bars[e.Desc.Digest]
		if !ok {
			name := e.Desc.Digest.Encoded()
			if len(name) > 12 {
				name = name[:12]
			}
			b = p.AddBar(e.Desc.Size,
				mpb.PrependDecorators(decor.Name(name+" ", decor.WCSyncSpaceR), decor.CountersKibiByte("% .1f / % .1f")),
				mpb.AppendDecorators(decor.OnComplete(decor.AverageSpeed(decor.SizeB1024(0), "% .1f"), "done")),
			)
			bars[e.Desc.Digest] = b
		}
		return b
	}
	finishBar := func(e host.Event, label string) {
		b := bar(e)
		if label != "" {
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
				finishBar(e, "")
			case host.BlobSkipped, host.BlobMounted:
				finishBar(e, string(e.Kind))
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
				fmt.Fprintf(w, "copied %d blobs (%s), skipped %d, mounted %d, %d manifests in %s\n",
					res.BlobsCopied, humanBytes(res.BytesCopied), res.BlobsSkipped, res.BlobsMounted, res.Manifests, res.Duration.Round(1e6))
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
