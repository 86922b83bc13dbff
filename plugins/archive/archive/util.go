package archive

import (
	"bytes"
	"io"
	"sort"

	"github.com/opencontainers/go-digest"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func sortDigests(ds []digest.Digest) {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
}
