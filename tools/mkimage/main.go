// Command mkimage writes a synthetic image (or a multi-platform index) into
// an OCI layout, for the demo, tests and benchmarks.
//
//	go run ./tools/mkimage -layout DIR -tag v1 -layers 4 -size 1MiB
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/layout"
	"github.com/stevedore-oci/stevedore/core/platform"
	"github.com/stevedore-oci/stevedore/internal/imagegen"
)

func main() {
	dir := flag.String("layout", "", "OCI layout directory to write (created if missing)")
	tag := flag.String("tag", "latest", "tag to give the image")
	layers := flag.Int("layers", 3, "number of layers")
	size := flag.String("size", "1MiB", "uncompressed size of each layer (suffix KiB, MiB, GiB)")
	compressible := flag.Float64("compressible", 0.5, "fraction of layers with compressible content")
	platforms := flag.String("platforms", "", "comma-separated OS/ARCH list: write an index with one image each")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if err := run(*dir, *tag, *layers, *size, *compressible, *platforms, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suf, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suf) {
			s, mult = strings.TrimSuffix(s, suf), m
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional KiB, MiB or GiB suffix", s)
	}
	return int64(n * float64(mult)), nil
}

func run(dir, tag string, n int, size string, compressible float64, platforms string, seed uint64) error {
	if dir == "" {
		return fmt.Errorf("-layout is required")
	}
	sz, err := parseSize(size)
	if err != nil {
		return err
	}
	store, err := layout.Create(dir)
	if err != nil {
		return err
	}
	spec := imagegen.Spec{Seed: seed, Labels: map[string]string{"org.opencontainers.image.title": "stevedore demo"}, Env: []string{"PATH=/usr/bin:/bin"}}
	for i := 0; i < n; i++ {
		spec.Layers = append(spec.Layers, imagegen.Layer{Size: sz, Compressible: float64(i) < compressible*float64(n)})
	}
	ctx := context.Background()
	if platforms == "" {
		img, err := imagegen.Write(ctx, store, tag, spec)
		if err != nil {
			return err
		}
		fmt.Println(img.Manifest.Digest)
		return nil
	}
	var ps []ocispec.Platform
	for _, s := range strings.Split(platforms, ",") {
		p, err := platform.Parse(s)
		if err != nil {
			return err
		}
		ps = append(ps, p)
	}
	desc, _, err := imagegen.WriteIndex(ctx, store, tag, spec, ps)
	if err != nil {
		return err
	}
	fmt.Println(desc.Digest)
	return nil
}
