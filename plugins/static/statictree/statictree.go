package statictree

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/atomicfile"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// Transport is the name this plugin serves.
const Transport = "static"

// Plugin serves the static: transport.
type Plugin struct{ log hclog.Logger }

// New returns the plugin; log may be nil.
func New(log hclog.Logger) *Plugin {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Plugin{log: log}
}

// Transports implements pluginapi.Plugin.
func (p *Plugin) Transports() []string { return []string{Transport} }

// splitLocation splits "PATH:NAME" or "PATH" (core/ref's static syntax;
// PATH holds no ':' there, NAME never does).
func splitLocation(loc string) (root, name string, err error) {
	root = loc
	if i := strings.LastIndex(loc, ":"); i >= 0 {
		root, name = loc[:i], loc[i+1:]
		if err := checkName(name); err != nil {
			return "", "", fmt.Errorf("static %s: %w", loc, err)
		}
	}
	if root == "" {
		return "", "", fmt.Errorf("static %s: empty path: %w", loc, core.ErrInvalid)
	}
	return root, name, nil
}

// Open implements pluginapi.Plugin.
func (p *Plugin) Open(ctx context.Context, req pluginapi.OpenRequest) (pluginapi.Endpoint, error) {
	if req.Transport != Transport {
		return nil, fmt.Errorf("transport %q is not served by the static plugin: %w", req.Transport, core.ErrUnsupported)
	}
	root, name, err := splitLocation(req.Location)
	if err != nil {
		return nil, err
	}
	switch req.Mode {
	case pluginapi.ModeRead:
		fi, err := os.Stat(root)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("static %s: %w", root, core.ErrNotFound)
			}
			return nil, fmt.Errorf("static %s: %w", root, err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("static %s: not a directory: %w", root, core.ErrInvalid)
		}
		return &source{t: tree{root}, name: name}, nil
	case pluginapi.ModeWrite:
		if name == "" {
			return nil, fmt.Errorf("static %s: a destination needs a repository: static:PATH:NAME[:TAG]: %w", root, core.ErrInvalid)
		}
		if err := os.MkdirAll(root, 0o755); err != nil {
			return nil, fmt.Errorf("static %s: %w", root, err)
		}
		return &dest{t: tree{root}, name: name, log: p.log, manifests: map[digest.Digest]entry{}, tags: map[string]entry{}}, nil
	}
	return nil, fmt.Errorf("static %s: mode %s: %w", root, req.Mode, core.ErrUnsupported)
}

// source reads images back from a tree.
type source struct {
	t    tree
	name string // "" when the location named no repository

	mu   sync.Mutex
	seen map[digest.Digest]string // manifest/blob digest -> repository it was resolved in
}

func (s *source) Close(context.Context) error { return nil }

// splitRef takes apart the ref of a source opened without a repository:
// "NAME:TAG" or "NAME@DIGEST".
func splitRef(ref string) (name, r string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	if i := strings.LastIndex(ref, ":"); i >= 0 && !strings.Contains(ref[i:], "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, "latest"
}

// Resolve takes a tag or digest (a "NAME:TAG" or "NAME@DIGEST" when the
// location named no repository); "" is the only tag of the repository, or
// the only image of the tree.
func (s *source) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	idx, err := s.t.readIndex()
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	name := s.name
	switch {
	case name == "" && ref == "":
		var all []string
		for n, refs := range idx {
			for _, t := range tagsOf(refs) {
				all = append(all, n+":"+t)
			}
		}
		sort.Strings(all)
		if len(all) == 0 {
			// Not "holds 0 images, name one of: ", an empty list.
			return ocispec.Descriptor{}, fmt.Errorf("static %s: holds no image: %w", s.t.root, core.ErrNotFound)
		}
		if len(all) != 1 {
			return ocispec.Descriptor{}, fmt.Errorf("static %s: holds %d images, name one of: %s: %w", s.t.root, len(all), strings.Join(all, ", "), core.ErrInvalid)
		}
		name, ref = splitRef(all[0])
	case name == "":
		name, ref = splitRef(ref)
	case ref == "":
		tags := tagsOf(idx[name])
		if len(tags) == 0 {
			return ocispec.Descriptor{}, fmt.Errorf("static %s: repository %s has no tags: %w", s.t.root, name, core.ErrNotFound)
		}
		if len(tags) != 1 {
			return ocispec.Descriptor{}, fmt.Errorf("static %s: repository %s has %d tags, name one of: %s: %w", s.t.root, name, len(tags), strings.Join(tags, ", "), core.ErrInvalid)
		}
		ref = tags[0]
	}
	if err := checkName(name); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("static %s: %w", s.t.root, err)
	}
	if digest.Digest(ref).Validate() != nil {
		if err := checkTag(ref); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("static %s: %w", s.t.root, err)
		}
	}
	e, ok := idx[name][ref]
	if !ok {
		// A tree written by hand or another tool: read the file.
		b, err := readManifestFile(s.t.manifestPath(name, ref))
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("static %s: %s:%s: %w", s.t.root, name, ref, err)
		}
		d, err := manifest.Descriptor(b, "")
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("static %s: %s:%s: %w", s.t.root, name, ref, err)
		}
		e = entry{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}
	}
	s.mu.Lock()
	if s.seen == nil {
		s.seen = map[digest.Digest]string{}
	}
	s.seen[e.Digest] = name
	s.mu.Unlock()
	return ocispec.Descriptor{MediaType: e.MediaType, Digest: e.Digest, Size: e.Size}, nil
}

// repoFor returns the repositories that may hold d: the location's, else
// the one an image was resolved in, else every one.
func (s *source) repoFor(d digest.Digest) []string {
	if s.name != "" {
		return []string{s.name}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	seen := map[string]bool{}
	for _, n := range s.seen {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func (s *source) GetManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	if err := checkDigest(desc.Digest); err != nil {
		return nil, fmt.Errorf("static %s: %w", s.t.root, err)
	}
	for _, n := range s.repoFor(desc.Digest) {
		b, err := readManifestFile(s.t.manifestPath(n, desc.Digest.String()))
		if errors.Is(err, core.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("static %s: %s@%s: %w", s.t.root, n, desc.Digest, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("static %s: manifest %s: %w", s.t.root, desc.Digest, core.ErrNotFound)
}

func (s *source) BlobPath(ctx context.Context, desc ocispec.Descriptor) (string, error) {
	if err := checkDigest(desc.Digest); err != nil {
		return "", fmt.Errorf("static %s: %w", s.t.root, err)
	}
	for _, n := range s.repoFor(desc.Digest) {
		for _, p := range []string{s.t.blobPath(n, desc.Digest), s.t.manifestPath(n, desc.Digest.String())} {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("static %s: blob %s: %w", s.t.root, desc.Digest, core.ErrNotFound)
}

func (s *source) GetBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	p, err := s.BlobPath(ctx, desc)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("static %s: blob %s: %w", s.t.root, desc.Digest, err)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("static %s: blob %s: %w", s.t.root, desc.Digest, err)
		}
	}
	return f, nil
}

// ListTags lists the repository's tags, or NAME:TAG for every image when
// the location named no repository.
func (s *source) ListTags(ctx context.Context) ([]string, error) {
	idx, err := s.t.readIndex()
	if err != nil {
		return nil, err
	}
	if s.name != "" {
		return tagsOf(idx[s.name]), nil
	}
	all := []string{}
	for n, refs := range idx {
		for _, t := range tagsOf(refs) {
			all = append(all, n+":"+t)
		}
	}
	sort.Strings(all)
	return all, nil
}

// dest writes images into one repository of a tree.
type dest struct {
	t    tree
	name string
	log  hclog.Logger

	mu        sync.Mutex
	manifests map[digest.Digest]entry // by-digest files written
	tags      map[string]entry        // tags to point at Commit
	done      bool
}

func (d *dest) HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	if err := checkDigest(desc.Digest); err != nil {
		return false, fmt.Errorf("static %s: %w", d.t.root, err)
	}
	fi, err := os.Stat(d.t.blobPath(d.name, desc.Digest))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == desc.Size, nil
}

func (d *dest) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	if err := checkDigest(desc.Digest); err != nil {
		return fmt.Errorf("static %s: %w", d.t.root, err)
	}
	if err := atomicfile.WriteVerified(ctx, d.t.blobPath(d.name, desc.Digest), desc, r); err != nil {
		return fmt.Errorf("static %s: %s: blob %s: %w", d.t.root, d.name, desc.Digest, err)
	}
	return nil
}

// PutManifest stores the manifest under its digest now; a tag is pointed
// at it only by Commit.
func (d *dest) PutManifest(ctx context.Context, desc ocispec.Descriptor, raw []byte, ref string) error {
	if err := content.VerifyBytes(raw, desc); err != nil {
		return fmt.Errorf("static %s: manifest %s: %w", d.t.root, desc.Digest, err)
	}
	mt := desc.MediaType
	if mt == "" {
		var err error
		if mt, err = manifest.DetectMediaType(raw); err != nil {
			return fmt.Errorf("static %s: manifest %s: %w", d.t.root, desc.Digest, err)
		}
	}
	if ref != "" && ref != desc.Digest.String() {
		if err := checkTag(ref); err != nil {
			return fmt.Errorf("static %s: %w", d.t.root, err)
		}
	}
	if err := atomicfile.WriteVerified(ctx, d.t.manifestPath(d.name, desc.Digest.String()), desc, strings.NewReader(string(raw))); err != nil {
		return fmt.Errorf("static %s: %s: manifest %s: %w", d.t.root, d.name, desc.Digest, err)
	}
	e := entry{MediaType: mt, Digest: desc.Digest, Size: desc.Size}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.manifests[desc.Digest] = e
	if ref != "" && ref != desc.Digest.String() {
		d.tags[ref] = e
	}
	return nil
}

// Commit points the tags, rewrites tags/list and the server map files,
// under the tree's lock.
func (d *dest) Commit(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return fmt.Errorf("static %s: already committed or closed: %w", d.t.root, core.ErrInvalid)
	}
	unlock, err := d.t.lock(ctx)
	if err != nil {
		return fmt.Errorf("static %s: lock: %w", d.t.root, err)
	}
	defer unlock()
	idx, err := d.t.readIndex()
	if err != nil {
		return err
	}
	refs := idx[d.name]
	if refs == nil {
		refs = map[string]entry{}
		idx[d.name] = refs
	}
	for dg, e := range d.manifests {
		refs[dg.String()] = e
	}
	// The tags' files come last: a commit failing before them points no tag
	// (a file server serves a tag from its file alone).
	tagged := map[string][]byte{}
	for tag, e := range d.tags {
		raw, err := readManifestFile(d.t.manifestPath(d.name, e.Digest.String()))
		if err != nil {
			return fmt.Errorf("static %s: %s: manifest %s: %w", d.t.root, d.name, e.Digest, err)
		}
		tagged[tag] = raw
		refs[tag] = e
	}
	list, _ := json.Marshal(struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{d.name, tagsOf(refs)})
	if err := atomicfile.Write(d.t.tagsListPath(d.name), list); err != nil {
		return fmt.Errorf("static %s: %s: tags/list: %w", d.t.root, d.name, err)
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(d.t.root, indexFile), b); err != nil {
		return fmt.Errorf("static %s: %w", d.t.root, err)
	}
	if err := d.t.writeServerMaps(idx); err != nil {
		return fmt.Errorf("static %s: server maps: %w", d.t.root, err)
	}
	for tag, raw := range tagged {
		if err := atomicfile.Write(d.t.manifestPath(d.name, tag), raw); err != nil {
			return fmt.Errorf("static %s: %s:%s: %w", d.t.root, d.name, tag, err)
		}
	}
	d.done = true
	d.log.Info("static tree updated; reload the web server to serve the new tags", "path", d.t.root, "repository", d.name)
	return nil
}

// Close without Commit leaves no tag pointed. Blobs and by-digest
// manifests already written stay: they are whole, verified, reachable by
// no tag, and another writer of the same tree may already count on them.
func (d *dest) Close(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.done = true
	return nil
}

var (
	_ pluginapi.Source      = (*source)(nil)
	_ pluginapi.TagLister   = (*source)(nil)
	_ pluginapi.BlobPather  = (*source)(nil)
	_ pluginapi.Destination = (*dest)(nil)
	_ pluginapi.Committer   = (*dest)(nil)
)
