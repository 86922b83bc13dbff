// Command embed copies one image with Stevedore's Go API, as a program that
// embeds Stevedore would: a Host, a Copy with a progress callback and the
// program's own hclog logger. Plugins are found as the CLI finds them
// ($STEVEDORE_PLUGIN_PATH, next to this binary, $XDG_DATA_HOME/stevedore/plugins).
//
//	embed oci:./layout:v1 oci:./copy:v1
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/stevedore-oci/stevedore/host"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: embed SOURCE DESTINATION")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	logger := hclog.New(&hclog.LoggerOptions{Name: "embed", Level: hclog.Info, Output: os.Stderr})
	res, err := copyImage(ctx, os.Args[1], os.Args[2], logger, os.Stdout)
	if err != nil {
		logger.Error("copy failed", "error", err)
		os.Exit(1)
	}
	logger.Info("copied", "digest", res.Descriptor.Digest, "blobs", res.BlobsCopied, "bytes", res.BytesCopied)
}

// copyImage is the whole embedding: make a Host, copy with a progress
// callback, close the Host (which stops the plugin processes it started).
func copyImage(ctx context.Context, src, dst string, logger hclog.Logger, progress io.Writer) (*host.CopyResult, error) {
	h, err := host.New(host.Options{Logger: logger})
	if err != nil {
		return nil, err
	}
	defer h.Close()
	var mu sync.Mutex // callbacks run on the copying goroutines
	return h.Copy(ctx, src, dst, host.CopyOptions{
		Progress: func(e host.Event) {
			if e.Kind == host.BlobProgress {
				return // per-MiB updates; a UI would draw a bar from e.Bytes
			}
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(progress, "%s %s %d\n", e.Kind, e.Desc.Digest, e.Desc.Size)
		},
	})
}
