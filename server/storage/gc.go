package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core/atomicfile"
	"github.com/stevedore-oci/stevedore/core/manifest"
)

// GCOptions configure a garbage collection.
type GCOptions struct {
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// DeleteUntagged also drops manifests that no tag reaches (directly,
	// as an index child, or as a referrer of a kept manifest).
	DeleteUntagged bool
	// Grace keeps any blob linked or written within this window, so blobs
	// of a push in progress (uploaded, manifest not yet pushed) survive
	// (0: 15 minutes; NoGrace: none).
	Grace time.Duration
	// UploadTTL removes upload sessions idle for longer (default 24h).
	UploadTTL time.Duration
}

// NoGrace as GCOptions.Grace keeps nothing for being recent.
const NoGrace time.Duration = -1

// GCReport says what a collection removed (or would remove).
type GCReport struct {
	Repositories     int
	ManifestsDropped []string // repo@digest entries removed from index.json
	BlobsUnlinked    int      // per-repository links removed
	SharedRemoved    int      // shared blobs no repository links any more
	BytesFreed       int64    // size of the shared blobs removed
	UploadsRemoved   int
}

// GC is a mark-and-sweep collection that is safe beside a running server:
// each repository is swept under its index lock (the lock a manifest PUT
// holds while it checks references), blobs touched within Grace are kept,
// and upload sessions are left alone until they expire.
func (s *Store) GC(ctx context.Context, o GCOptions) (GCReport, error) {
	switch {
	case o.Grace == 0:
		o.Grace = 15 * time.Minute
	case o.Grace < 0:
		o.Grace = 0
	}
	if o.UploadTTL <= 0 {
		o.UploadTTL = 24 * time.Hour
	}
	var rep GCReport
	s.catalogMu.Lock()
	s.catalogCache = nil
	s.catalogMu.Unlock()
	repos, err := s.Repositories(ctx)
	if err != nil {
		return rep, err
	}
	cutoff := time.Now().Add(-o.Grace)
	g := &gcRun{released: map[digest.Digest]*release{}}
	for _, name := range repos {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if err := s.gcRepo(ctx, name, o, cutoff, g, &rep); err != nil {
			return rep, err
		}
		rep.Repositories++
	}
	// Shared blobs that no repository links any more.
	base := filepath.Join(s.root, blobsDirName)
	algs, _ := os.ReadDir(base)
	for _, a := range algs {
		dir := filepath.Join(base, a.Name())
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			fi, err := os.Lstat(p)
			if err != nil || !fi.Mode().IsRegular() {
				continue
			}
			d := digest.NewDigestFromEncoded(digest.Algorithm(a.Name()), e.Name())
			links := nlink(fi)
			if r := g.released[d]; r != nil && o.DryRun {
				links -= uint64(r.links) // the links this run would have removed
			}
			if links > 1 || g.lastUse(d, fi).After(cutoff) {
				continue
			}
			rep.SharedRemoved++
			rep.BytesFreed += fi.Size()
			if !o.DryRun {
				_ = os.Remove(p)
			}
		}
	}
	rep.UploadsRemoved = s.sweepUploads(o.UploadTTL, o.DryRun)
	return rep, nil
}

func (s *Store) gcRepo(ctx context.Context, name string, o GCOptions, cutoff time.Time, g *gcRun, rep *GCReport) error {
	r := s.repo(name)
	r.mu.Lock()
	defer r.mu.Unlock()
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
	marked := map[digest.Digest]bool{}
	var walk func(d digest.Digest, depth int)
	walk = func(d digest.Digest, depth int) {
		if marked[d] || depth > 16 {
			return
		}
		marked[d] = true
		m := s.readManifest(name, d)
		if m == nil {
			return
		}
		for _, c := range m.Children() {
			if manifest.IsManifest(c.MediaType) {
				walk(c.Digest, depth+1)
			} else {
				marked[c.Digest] = true
			}
		}
	}
	keep := map[digest.Digest]bool{}
	recent := func(d digest.Digest) bool {
		fi, err := os.Lstat(s.repoBlobPath(name, d))
		return err == nil && g.lastUse(d, fi).After(cutoff)
	}
	for _, e := range idx.Manifests {
		// An untagged manifest pushed within the grace period may be the
		// child of an index whose push is still in progress.
		if !o.DeleteUntagged || e.Annotations[ocispec.AnnotationRefName] != "" || recent(e.Digest) {
			keep[e.Digest] = true
			walk(e.Digest, 0)
		}
	}
	if o.DeleteUntagged {
		// Kept too: what a kept manifest reaches (an index's images), and
		// the referrers of anything kept, transitively.
		subjects := map[digest.Digest]digest.Digest{} // manifest -> its subject
		for _, e := range idx.Manifests {
			if m := s.readManifest(name, e.Digest); m != nil && m.Subject != nil {
				subjects[e.Digest] = m.Subject.Digest
			}
		}
		for changed := true; changed; {
			changed = false
			for _, e := range idx.Manifests {
				if keep[e.Digest] {
					continue
				}
				if sub, ok := subjects[e.Digest]; marked[e.Digest] || ok && marked[sub] {
					keep[e.Digest] = true
					walk(e.Digest, 0)
					changed = true
				}
			}
		}
		var kept []ocispec.Descriptor
		for _, e := range idx.Manifests {
			if keep[e.Digest] {
				kept = append(kept, e)
			} else {
				rep.ManifestsDropped = append(rep.ManifestsDropped, name+"@"+e.Digest.String())
			}
		}
		if len(kept) != len(idx.Manifests) && !o.DryRun {
			if kept == nil {
				kept = []ocispec.Descriptor{}
			}
			idx.Manifests = kept
			b, err := json.Marshal(idx)
			if err != nil {
				return err
			}
			if err := atomicfile.Write(p, b); err != nil {
				return fmt.Errorf("repository %s: write index.json: %w", name, err)
			}
			r.install(nil)
		}
	}
	// Sweep this repository's links.
	base := filepath.Join(r.dir, ocispec.ImageBlobsDir)
	algs, _ := os.ReadDir(base)
	for _, a := range algs {
		dir := filepath.Join(base, a.Name())
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			fp := filepath.Join(dir, e.Name())
			fi, err := os.Lstat(fp)
			if err != nil || fi.IsDir() {
				continue
			}
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				if !o.DryRun && !ctime(fi).After(cutoff) {
					_ = os.Remove(fp)
				}
				continue
			}
			d := digest.NewDigestFromEncoded(digest.Algorithm(a.Name()), e.Name())
			if marked[d] || g.lastUse(d, fi).After(cutoff) {
				continue
			}
			rep.BlobsUnlinked++
			if nlink(fi) <= 1 {
				// The repository held the only copy (a blob written by
				// another tool): its bytes are freed here.
				rep.BytesFreed += fi.Size()
			}
			g.unlink(d, fi, fp, s.sharedBlobPath(d), o.DryRun)
		}
	}
	return nil
}

// readManifest reads and parses manifest d of repository name (nil when it
// is missing, too large or not a manifest).
func (s *Store) readManifest(name string, d digest.Digest) *manifest.Manifest {
	f, err := s.OpenBlob(name, d)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() > 4<<20 {
		return nil
	}
	raw := make([]byte, fi.Size())
	if _, err := f.ReadAt(raw, 0); err != nil {
		return nil
	}
	m, err := manifest.Parse(raw, "")
	if err != nil {
		return nil
	}
	return m
}

// gcRun is what one collection remembers across repositories: the blob
// links it removed. Removing a hard link changes the change time of the
// inode every other link shares, the time the grace period reads as the
// blob's last use: without this, the shared copy of a blob whose last link
// this run removed looked just used and was kept (until a run at least the
// grace period later), as were the other repositories' links to it.
type gcRun struct {
	released map[digest.Digest]*release
}

type release struct {
	links  int       // links removed (or, in a dry run, that would be)
	before time.Time // the inode's change time before this run touched it
	after  time.Time // its change time right after this run's last removal
}

// lastUse is when blob d, whose link or shared copy fi is, was last used:
// its change time, unless that is only this run's own removal of a link.
func (g *gcRun) lastUse(d digest.Digest, fi os.FileInfo) time.Time {
	t := ctime(fi)
	if r := g.released[d]; r != nil && !r.after.IsZero() && t.Equal(r.after) {
		return r.before
	}
	return t
}

// unlink removes the link fp of blob d (whose stat, before, is fi) and
// records it; shared is the blob's shared copy.
func (g *gcRun) unlink(d digest.Digest, fi os.FileInfo, fp, shared string, dryRun bool) {
	r := g.released[d]
	if r == nil {
		r = &release{}
		g.released[d] = r
	}
	if t := g.lastUse(d, fi); t.After(r.before) {
		r.before = t
	}
	r.links++
	if dryRun {
		return
	}
	_ = os.Remove(fp)
	if sfi, err := os.Lstat(shared); err == nil && os.SameFile(fi, sfi) {
		r.after = ctime(sfi) // a copy of another inode was not touched
	}
}
