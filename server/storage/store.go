package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/atomicfile"
)

// Directory names under the root. They start with a dot, which no
// repository name can, so they never collide with a repository.
const (
	blobsDirName   = ".blobs"
	uploadsDirName = ".uploads"
	lockFileName   = ".stevedore.lock" // same name core/layout locks
	tmpPrefix      = ".tmp-"
	filePerm       = 0o644
)

// Options configure a Store.
type Options struct {
	// UploadTTL is how long an upload session may stay idle before it is
	// discarded (default 1h).
	UploadTTL time.Duration
	// MaxUploadSize caps one blob (0 = unlimited).
	MaxUploadSize int64
	// Existing opens only a store that serve created, and creates nothing
	// (gc: a misspelt --root, or a directory that is not a store, is an
	// error rather than an empty store made there).
	Existing bool
}

// Store is the registry's content store rooted at one directory. It is safe
// for concurrent use.
type Store struct {
	root string
	opts Options

	repos sync.Map // name -> *repo

	uploadsMu   sync.Mutex
	uploads     map[string]*Upload
	lastExpired time.Time

	catalogMu    sync.Mutex
	catalogCache []string // nil = must rescan
	catalogAt    time.Time
}

// Open opens (creating as needed) the store at root.
func Open(root string, opts Options) (*Store, error) {
	if root == "" {
		return nil, fmt.Errorf("registry storage: empty root directory: %w", core.ErrInvalid)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("registry storage %s: %w", root, err)
	}
	if opts.UploadTTL <= 0 {
		opts.UploadTTL = time.Hour
	}
	if opts.Existing {
		fi, err := os.Stat(filepath.Join(abs, blobsDirName))
		if err != nil || !fi.IsDir() {
			if _, rerr := os.Stat(abs); rerr != nil {
				return nil, fmt.Errorf("registry storage %s: %w", root, rerr)
			}
			return nil, fmt.Errorf("registry storage %s: not a store of stevedore serve (no %s directory): %w", root, blobsDirName, core.ErrNotFound)
		}
		return &Store{root: abs, opts: opts, uploads: map[string]*Upload{}}, nil
	}
	for _, d := range []string{abs, filepath.Join(abs, blobsDirName), filepath.Join(abs, uploadsDirName)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("registry storage %s: %w", root, err)
		}
	}
	return &Store{root: abs, opts: opts, uploads: map[string]*Upload{}}, nil
}

// Root is the store's absolute root directory.
func (s *Store) Root() string { return s.root }

// RepoDir is the directory of repository name's OCI layout. name must be
// valid (ValidateName).
func (s *Store) RepoDir(name string) string { return filepath.Join(s.root, filepath.FromSlash(name)) }

func (s *Store) sharedBlobPath(d digest.Digest) string {
	return filepath.Join(s.root, blobsDirName, d.Algorithm().String(), d.Encoded())
}

func (s *Store) repoBlobPath(name string, d digest.Digest) string {
	return filepath.Join(s.RepoDir(name), ocispec.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

// repo is the in-memory state of one repository.
type repo struct {
	name string
	dir  string
	mu   sync.Mutex // serializes this process's writers; flock excludes others
	snap *snapshot  // guarded by snapMu
	// gen counts the snapshots writers installed (or dropped), guarded by
	// snapMu: a reader keeps what it read only if no writer installed
	// one meanwhile, which may be newer than what it read.
	gen uint64
	// snapMu guards snap and gen; readers take it briefly.
	snapMu sync.RWMutex
	// created is set once the layout files exist.
	created bool
}

// snapshot is a parsed index.json and the stat identity it was read with.
type snapshot struct {
	id        fileID
	checked   atomic.Int64 // when id was last compared with the file
	index     ocispec.Index
	tags      map[string]ocispec.Descriptor
	digests   map[digest.Digest]ocispec.Descriptor
	tagList   []string
	refOnce   sync.Once
	referrers map[digest.Digest][]ocispec.Descriptor
}

// fileID identifies one version of index.json; index.json is always
// replaced by rename, so a new version has a new inode.
type fileID struct {
	ino, size   uint64
	mtime, ctim int64
}

func (s *Store) repo(name string) *repo {
	if r, ok := s.repos.Load(name); ok {
		return r.(*repo)
	}
	r, _ := s.repos.LoadOrStore(name, &repo{name: name, dir: s.RepoDir(name)})
	return r.(*repo)
}

// revalidateEvery bounds how long a cached index may miss a change made by
// another process (gc, a tool writing the layout). Changes made through the
// Store are seen at once: writers replace the snapshot.
const revalidateEvery = time.Second

// load returns the current snapshot of the repository's index, reading
// index.json again only when it changed on disk. A repository without a
// layout gives an error wrapping core.ErrNotFound.
func (r *repo) load() (*snapshot, error) {
	r.snapMu.RLock()
	sn, gen := r.snap, r.gen
	r.snapMu.RUnlock()
	now := time.Now().UnixNano()
	if sn != nil && now-sn.checked.Load() < int64(revalidateEvery) {
		return sn, nil
	}
	p := filepath.Join(r.dir, ocispec.ImageIndexFile)
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscallENOTDIR) {
			return nil, fmt.Errorf("repository %s: %w", r.name, core.ErrNotFound)
		}
		return nil, fmt.Errorf("repository %s: %w", r.name, err)
	}
	id := statID(fi)
	if sn != nil && sn.id == id {
		sn.checked.Store(now)
		return sn, nil
	}
	idx, id, err := readIndex(p)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", r.name, err)
	}
	sn = newSnapshot(idx, id)
	sn.checked.Store(now)
	r.snapMu.Lock()
	if r.gen == gen {
		r.snap = sn
	}
	r.snapMu.Unlock()
	return sn, nil
}

// install makes sn the snapshot readers use: a writer's, of what it just
// wrote (nil: none, read index.json again).
func (r *repo) install(sn *snapshot) {
	r.snapMu.Lock()
	r.snap = sn
	r.gen++
	r.snapMu.Unlock()
}

func readIndex(p string) (ocispec.Index, fileID, error) {
	f, err := os.Open(p)
	if err != nil {
		return ocispec.Index{}, fileID{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ocispec.Index{}, fileID{}, err
	}
	var idx ocispec.Index
	if err := json.NewDecoder(f).Decode(&idx); err != nil {
		return ocispec.Index{}, fileID{}, fmt.Errorf("%s: %v: %w", p, err, core.ErrInvalid)
	}
	return idx, statID(fi), nil
}

func newSnapshot(idx ocispec.Index, id fileID) *snapshot {
	sn := &snapshot{
		id:      id,
		index:   idx,
		tags:    map[string]ocispec.Descriptor{},
		digests: make(map[digest.Digest]ocispec.Descriptor, len(idx.Manifests)),
	}
	for _, d := range idx.Manifests {
		if t := d.Annotations[ocispec.AnnotationRefName]; t != "" {
			if _, dup := sn.tags[t]; !dup {
				sn.tagList = append(sn.tagList, t)
			}
			sn.tags[t] = d
		}
		if _, ok := sn.digests[d.Digest]; !ok {
			sn.digests[d.Digest] = d
		}
	}
	sort.Strings(sn.tagList)
	return sn
}

// update runs fn on a fresh copy of the repository's index under both the
// in-process mutex and the layout's flock, creating the layout if needed,
// and writes the result atomically when fn reports a change.
func (s *Store) update(ctx context.Context, name string, fn func(idx *ocispec.Index) (changed bool, err error)) error {
	r := s.repo(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := s.ensureLayout(r); err != nil {
		return err
	}
	unlock, err := atomicfile.Lock(ctx, filepath.Join(r.dir, lockFileName))
	if err != nil {
		return fmt.Errorf("repository %s: %w", name, err)
	}
	defer unlock()
	p := filepath.Join(r.dir, ocispec.ImageIndexFile)
	idx, _, err := readIndex(p)
	if err != nil {
		return fmt.Errorf("repository %s: %w", name, err)
	}
	changed, err := fn(&idx)
	if err != nil || !changed {
		return err
	}
	idx.SchemaVersion = 2
	idx.MediaType = ocispec.MediaTypeImageIndex
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{}
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(p, b); err != nil {
		return fmt.Errorf("repository %s: write index.json: %w", name, err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("repository %s: %w", name, err)
	}
	sn := newSnapshot(idx, statID(fi))
	sn.checked.Store(time.Now().UnixNano())
	r.install(sn)
	return nil
}

// ensureLayout creates the repository's layout files when missing. Called
// with r.mu held.
func (s *Store) ensureLayout(r *repo) error {
	if r.created {
		if _, err := os.Stat(filepath.Join(r.dir, ocispec.ImageIndexFile)); err == nil {
			return nil
		}
		r.created = false
	}
	if err := os.MkdirAll(filepath.Join(r.dir, ocispec.ImageBlobsDir), 0o755); err != nil {
		return fmt.Errorf("repository %s: create layout: %w", r.name, err)
	}
	unlock, err := atomicfile.Lock(context.Background(), filepath.Join(r.dir, lockFileName))
	if err != nil {
		return fmt.Errorf("repository %s: %w", r.name, err)
	}
	defer unlock()
	lf := filepath.Join(r.dir, ocispec.ImageLayoutFile)
	if _, err := os.Stat(lf); errors.Is(err, fs.ErrNotExist) {
		b, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
		if err := atomicfile.Write(lf, b); err != nil {
			return fmt.Errorf("repository %s: create layout: %w", r.name, err)
		}
	}
	ip := filepath.Join(r.dir, ocispec.ImageIndexFile)
	if _, err := os.Stat(ip); errors.Is(err, fs.ErrNotExist) {
		b, _ := json.Marshal(ocispec.Index{Versioned: specsVersioned(), MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}})
		if err := atomicfile.Write(ip, b); err != nil {
			return fmt.Errorf("repository %s: create layout: %w", r.name, err)
		}
		s.catalogMu.Lock()
		s.catalogCache = nil
		s.catalogMu.Unlock()
	}
	r.created = true
	return nil
}

// Repositories lists the repositories (directories holding an OCI layout)
// in lexical order.
func (s *Store) Repositories(ctx context.Context) ([]string, error) {
	s.catalogMu.Lock()
	defer s.catalogMu.Unlock()
	// Repositories created by this process reset the cache; a short
	// lifetime picks up layouts other tools created.
	if s.catalogCache != nil && time.Since(s.catalogAt) < 5*time.Second {
		return s.catalogCache, nil
	}
	var out []string
	layouts := map[string]bool{} // directories found holding a layout
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == s.root {
				return err
			}
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		base := d.Name()
		// A layout's own blob directory holds no repository; a "blobs"
		// anywhere else may be one (the repository "blobs", and those
		// under it).
		if p != s.root && (strings.HasPrefix(base, ".") || base == ocispec.ImageBlobsDir && layouts[filepath.Dir(p)]) {
			return fs.SkipDir
		}
		if _, err := os.Stat(filepath.Join(p, ocispec.ImageIndexFile)); err == nil {
			layouts[p] = true
			rel, err := filepath.Rel(s.root, p)
			if err == nil && rel != "." {
				name := filepath.ToSlash(rel)
				if ValidateName(name) == nil {
					out = append(out, name)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("registry storage %s: list repositories: %w", s.root, err)
	}
	sort.Strings(out)
	if out == nil {
		out = []string{}
	}
	s.catalogCache = out
	s.catalogAt = time.Now()
	return out, nil
}

// Exists reports whether repository name has a layout.
func (s *Store) Exists(name string) bool {
	_, err := s.loadRepo(name)
	return err == nil
}

// loadRepo is repo(name).load() for readers, except that a name without a
// layout on disk is not remembered: anonymous requests for ever new names
// (a scan) grew the map of repositories without bound, about 370 bytes a
// name that were never freed.
func (s *Store) loadRepo(name string) (*snapshot, error) {
	if r, ok := s.repos.Load(name); ok {
		return r.(*repo).load()
	}
	if _, err := os.Stat(filepath.Join(s.RepoDir(name), ocispec.ImageIndexFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscallENOTDIR) {
			return nil, fmt.Errorf("repository %s: %w", name, core.ErrNotFound)
		}
		return nil, fmt.Errorf("repository %s: %w", name, err)
	}
	return s.repo(name).load()
}
