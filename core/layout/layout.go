package layout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/atomicfile"
	"github.com/stevedore-oci/stevedore/core/manifest"
)

// lockFile is the file flocked while index.json is read-modify-written.
const lockFile = ".stevedore.lock"

// tmpDirName is the directory inside the layout for blobs being written.
const tmpDirName = ".stevedore-tmp"

// maxLayoutFileSize caps the oci-layout marker read into memory.
const maxLayoutFileSize = 64 << 10

// Store is an OCI image layout on disk. Its methods are safe for concurrent
// use by several goroutines and by several processes sharing the directory.
type Store struct {
	dir     string
	swept   sync.Once // sweepStale
	cache   indexCache
	updates updateQueue
	refs    manifest.ReferrerCache // Referrers
	refsBy  referrersByIndex
}

// Open opens an existing layout. dir must hold an oci-layout file with
// imageLayoutVersion 1.0.0 and an index.json.
//
// A directory that exists but holds no oci-layout file is an error wrapping
// ErrNotLayout (and core.ErrNotFound): layouts may lie below it (Find).
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, fmt.Errorf("oci layout: empty directory name: %w", core.ErrInvalid)
	}
	if err := checkDir("oci layout "+dir, dir); err != nil {
		return nil, err
	}
	s := &Store{dir: dir}
	if err := s.checkLayoutFile(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.indexPath()); err != nil {
		if isNotExist(err) {
			return nil, fmt.Errorf("oci layout %s: no %s: %w", dir, ocispec.ImageIndexFile, core.ErrInvalid)
		}
		return nil, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	return s, nil
}

// Create opens the layout at dir, creating the directory, the oci-layout
// marker, the blobs directory and an empty index.json as needed. An existing
// layout is left as it is (its oci-layout must be valid).
func Create(dir string) (*Store, error) {
	if dir == "" {
		return nil, fmt.Errorf("oci layout: empty directory name: %w", core.ErrInvalid)
	}
	if err := os.MkdirAll(filepath.Join(dir, ocispec.ImageBlobsDir), 0o755); err != nil {
		return nil, fmt.Errorf("oci layout %s: create: %w", dir, err)
	}
	s := &Store{dir: dir}
	if _, err := s.init(); err != nil {
		return nil, err
	}
	return s, nil
}

// init writes the oci-layout marker and an empty index.json where missing,
// and reports whether it wrote the marker (the directory held no layout).
func (s *Store) init() (created bool, err error) {
	// The lock makes "create index.json if missing" safe against another
	// process that is creating the layout or already tagging in it.
	unlock, err := s.lock(context.Background())
	if err != nil {
		return false, err
	}
	defer unlock()
	switch err := s.checkLayoutFile(); {
	case err == nil:
	case errors.Is(err, core.ErrNotFound):
		b, _ := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
		if err := atomicfile.Write(filepath.Join(s.dir, ocispec.ImageLayoutFile), b); err != nil {
			return false, fmt.Errorf("oci layout %s: write %s: %w", s.dir, ocispec.ImageLayoutFile, err)
		}
		created = true
	default:
		return false, err
	}
	if _, err := os.Stat(s.indexPath()); isNotExist(err) {
		if err := s.writeIndex(ocispec.Index{}); err != nil {
			return false, err
		}
	} else if err != nil {
		return false, fmt.Errorf("oci layout %s: %w", s.dir, err)
	}
	return created, nil
}

// Dir is the layout's directory as given to Open or Create.
func (s *Store) Dir() string { return s.dir }

func (s *Store) indexPath() string { return filepath.Join(s.dir, ocispec.ImageIndexFile) }

// checkLayoutFile validates the oci-layout marker; a missing marker wraps
// core.ErrNotFound.
func (s *Store) checkLayoutFile() error {
	name := filepath.Join(s.dir, ocispec.ImageLayoutFile)
	f, err := os.Open(name)
	if err != nil {
		if isNotExist(err) {
			return fmt.Errorf("oci layout %s: no %s file: %w", s.dir, ocispec.ImageLayoutFile, ErrNotLayout)
		}
		return fmt.Errorf("oci layout %s: %w", s.dir, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLayoutFileSize+1))
	if err != nil {
		return fmt.Errorf("oci layout %s: read %s: %w", s.dir, ocispec.ImageLayoutFile, err)
	}
	var l ocispec.ImageLayout
	if len(b) > maxLayoutFileSize || json.Unmarshal(b, &l) != nil {
		return fmt.Errorf("oci layout %s: %s is not valid JSON: %w", s.dir, ocispec.ImageLayoutFile, core.ErrInvalid)
	}
	if l.Version != ocispec.ImageLayoutVersion {
		return fmt.Errorf("oci layout %s: imageLayoutVersion %q, want %q: %w", s.dir, l.Version, ocispec.ImageLayoutVersion, core.ErrUnsupported)
	}
	return nil
}
