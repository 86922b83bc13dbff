package statictree

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/atomicfile"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/staticfmt"
)

// Sidecar files, relative to the tree root.
const (
	metaDir          = staticfmt.MetaDir
	indexFile        = metaDir + "/manifests.json"
	lockFile         = metaDir + "/lock"
	maxTreeIndexSize = 256 << 20
)

var (
	nameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagRE  = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
)

// entry describes what one manifest URL serves.
type entry struct {
	MediaType string        `json:"mediaType"`
	Digest    digest.Digest `json:"digest"`
	Size      int64         `json:"size"`
}

// treeIndex maps repository -> reference (tag or digest) -> entry.
type treeIndex map[string]map[string]entry

// tree is a static registry tree rooted at root.
type tree struct{ root string }

func checkName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("repository name %q is malformed: %w", name, core.ErrInvalid)
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("repository name %q is %d characters, over distribution's %d: %w", name, len(name), maxNameLen, core.ErrInvalid)
	}
	// A repository's directory holds its manifests, blobs and tags: a
	// nested repository by one of those names would collide with them.
	for _, c := range strings.Split(name, "/") {
		if c == "manifests" || c == "blobs" || c == "tags" {
			return fmt.Errorf("repository name %q: %q is reserved in a static tree (it holds a repository's %s): %w", name, c, c, core.ErrInvalid)
		}
	}
	return nil
}

// maxNameLen is distribution's limit on a repository name; the generated
// nginx configuration's map buckets are sized for it.
const maxNameLen = 255

func checkTag(tag string) error {
	if !tagRE.MatchString(tag) {
		return fmt.Errorf("tag %q is malformed: %w", tag, core.ErrInvalid)
	}
	return nil
}

func checkDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %v: %w", d, err, core.ErrInvalid)
	}
	return nil
}

func (t tree) repoDir(name string) string {
	return filepath.Join(t.root, "v2", filepath.FromSlash(name))
}

// manifestPath is the file of a manifest URL; ref is a checked tag or
// digest.
func (t tree) manifestPath(name, ref string) string {
	return filepath.Join(t.repoDir(name), "manifests", ref)
}

func (t tree) blobPath(name string, d digest.Digest) string {
	return filepath.Join(t.repoDir(name), "blobs", d.String())
}

func (t tree) tagsListPath(name string) string {
	return filepath.Join(t.repoDir(name), "tags", "list")
}

func (t tree) readIndex() (treeIndex, error) {
	f, err := os.Open(filepath.Join(t.root, indexFile))
	if errors.Is(err, os.ErrNotExist) {
		return treeIndex{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("static %s: %w", t.root, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxTreeIndexSize+1))
	if err != nil {
		return nil, fmt.Errorf("static %s: %w", t.root, err)
	}
	if len(b) > maxTreeIndexSize {
		return nil, fmt.Errorf("static %s: %s too large: %w", t.root, indexFile, core.ErrTooLarge)
	}
	idx := treeIndex{}
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("static %s: %s: %v: %w", t.root, indexFile, err, core.ErrInvalid)
	}
	return idx, nil
}

// readManifestFile reads a manifest file, capped.
func readManifestFile(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, core.ErrNotFound
		}
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, content.MaxManifestSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > content.MaxManifestSize {
		return nil, fmt.Errorf("over %d bytes: %w", content.MaxManifestSize, core.ErrTooLarge)
	}
	return b, nil
}

// lock takes the tree's exclusive lock, polling so that ctx is honoured.
func (t tree) lock(ctx context.Context) (func(), error) {
	if err := os.MkdirAll(filepath.Join(t.root, metaDir), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(t.root, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// writeServerMaps regenerates the nginx and Caddy map bodies from idx.
func (t tree) writeServerMaps(idx treeIndex) error {
	var types, digests, caddy bytes.Buffer
	names := make([]string, 0, len(idx))
	for n := range idx {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		refs := make([]string, 0, len(idx[n]))
		for r := range idx[n] {
			refs = append(refs, r)
		}
		sort.Strings(refs)
		for _, r := range refs {
			e := idx[n][r]
			uri := "/v2/" + n + "/manifests/" + r
			fmt.Fprintf(&types, "%q %q;\n", uri, e.MediaType)
			fmt.Fprintf(&digests, "%q %q;\n", uri, e.Digest)
			fmt.Fprintf(&caddy, "%q %q %q\n", uri, e.MediaType, e.Digest)
		}
	}
	for name, b := range map[string][]byte{staticfmt.NginxTypesMap: types.Bytes(), staticfmt.NginxDigestsMap: digests.Bytes(), staticfmt.CaddyMap: caddy.Bytes()} {
		if err := atomicfile.Write(filepath.Join(t.root, name), b); err != nil {
			return err
		}
	}
	return nil
}

// tagsOf lists the tags (not digests) of a repository in idx.
func tagsOf(refs map[string]entry) []string {
	tags := []string{}
	for r := range refs {
		if !strings.Contains(r, ":") {
			tags = append(tags, r)
		}
	}
	sort.Strings(tags)
	return tags
}
