// Command mkfixture writes the sync benchmark's fixture: one OCI layout per
// repository, every image sharing a base layer, the images of a repository
// sharing a repository layer, and each image a small layer of its own.
// Layers are valid tar+gzip (random file content, stored without
// compression effort) so that every tool copies them byte for byte.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/layout"
)

func main() {
	dir := flag.String("dir", "", "directory to write one layout per repository into")
	repos := flag.String("repos", "alpha,bravo,charlie,delta,echo", "repository names")
	tags := flag.String("tags", "1.0.0,1.1.0,1.2.0,2.0.0,2.1.0,latest", "tags per repository")
	base := flag.Int("base", 8<<20, "bytes of the shared base layer's file")
	repoSize := flag.Int("repo", 2<<20, "bytes of each repository layer's file")
	own := flag.Int("own", 256<<10, "bytes of each image's own layer's file")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "mkfixture: -dir is required")
		os.Exit(2)
	}
	if err := run(*dir, strings.Split(*repos, ","), strings.Split(*tags, ","), *base, *repoSize, *own); err != nil {
		fmt.Fprintln(os.Stderr, "mkfixture:", err)
		os.Exit(1)
	}
}

type blob struct {
	desc   ocispec.Descriptor
	diffID digest.Digest
	data   []byte
}

var rng = rand.New(rand.NewPCG(7, 11))

// layer builds a tar.gz holding one file of n random bytes.
func layer(name string, n int) (blob, error) {
	content := make([]byte, n)
	for i := range content {
		content[i] = byte(rng.Uint32())
	}
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(n), ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		return blob{}, err
	}
	if _, err := tw.Write(content); err != nil {
		return blob{}, err
	}
	if err := tw.Close(); err != nil {
		return blob{}, err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.NoCompression)
	if _, err := zw.Write(tarBuf.Bytes()); err != nil {
		return blob{}, err
	}
	if err := zw.Close(); err != nil {
		return blob{}, err
	}
	b := gz.Bytes()
	return blob{
		desc:   ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(b), Size: int64(len(b))},
		diffID: digest.FromBytes(tarBuf.Bytes()),
		data:   b,
	}, nil
}

func run(dir string, repos, tags []string, baseSize, repoSize, ownSize int) error {
	ctx := context.Background()
	base, err := layer("base.bin", baseSize)
	if err != nil {
		return err
	}
	for _, repo := range repos {
		s, err := layout.Create(filepath.Join(dir, repo))
		if err != nil {
			return err
		}
		rl, err := layer(repo+".bin", repoSize)
		if err != nil {
			return err
		}
		for i, tag := range tags {
			own, err := layer(fmt.Sprintf("%s-%d.bin", repo, i), ownSize)
			if err != nil {
				return err
			}
			layers := []blob{base, rl, own}
			cfg := ocispec.Image{
				Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"},
				Config:   ocispec.ImageConfig{Labels: map[string]string{"repo": repo, "tag": tag}},
				RootFS:   ocispec.RootFS{Type: "layers"},
			}
			m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest}
			for _, l := range layers {
				if err := s.WriteBlobBytes(ctx, l.desc, l.data); err != nil {
					return err
				}
				cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
				m.Layers = append(m.Layers, l.desc)
			}
			cfgRaw, err := json.Marshal(cfg)
			if err != nil {
				return err
			}
			m.Config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfgRaw), Size: int64(len(cfgRaw))}
			if err := s.WriteBlobBytes(ctx, m.Config, cfgRaw); err != nil {
				return err
			}
			raw, err := json.Marshal(m)
			if err != nil {
				return err
			}
			md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
			if err := s.WriteBlobBytes(ctx, md, raw); err != nil {
				return err
			}
			if err := s.Tag(ctx, md, tag); err != nil {
				return err
			}
		}
	}
	return nil
}
