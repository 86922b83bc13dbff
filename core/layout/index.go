package layout

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/atomicfile"
	"github.com/stevedore-oci/stevedore/core/content"
	"github.com/stevedore-oci/stevedore/core/grammar"
)

// maxIndexSize caps index.json read into memory.
const maxIndexSize = 64 << 20

// containerdNameAnnotation is where containerd and BuildKit put the full
// image name ("docker.io/library/alpine:3.20") while ref.name holds the tag.
const containerdNameAnnotation = "io.containerd.image.name"

// Index returns the layout's index.json, the caller's to change. Readers
// take no lock: index.json is only ever replaced by rename, so a read sees
// one whole version.
func (s *Store) Index(ctx context.Context) (ocispec.Index, error) {
	idx, err := s.snapshot(ctx)
	if err != nil {
		return idx, err
	}
	return cloneIndex(idx), nil
}

// snapshot returns index.json as parsed, shared: callers must not change
// it, its entries or their fields (copy what they hand out or change).
//
// The parsed index is kept while index.json stays the same file (inode,
// size, modification and change times): a sync resolving each of thousands
// of tags parsed the whole file for each (and copying it for each was the
// next quadratic cost).
func (s *Store) snapshot(ctx context.Context) (ocispec.Index, error) {
	if err := ctx.Err(); err != nil {
		return ocispec.Index{}, err
	}
	key, keyed := statKey(s.indexPath())
	if keyed {
		s.cache.mu.Lock()
		if s.cache.key.same(key) {
			idx := s.cache.idx
			s.cache.mu.Unlock()
			return idx, nil
		}
		s.cache.mu.Unlock()
	}
	idx, err := s.readIndex()
	if err != nil {
		return idx, err
	}
	// Kept only if index.json did not change while it was read.
	if after, ok := statKey(s.indexPath()); keyed && ok && after.same(key) {
		s.cache.mu.Lock()
		s.cache.key, s.cache.idx = key, idx
		s.cache.mu.Unlock()
	}
	return idx, nil
}

// indexCache is the last index.json parsed, and which file it was.
type indexCache struct {
	mu  sync.Mutex
	key fileKey
	idx ocispec.Index
}

// fileKey tells one version of a file from another without reading it:
// the same file (device and inode), size, modification and change times.
type fileKey struct{ fi os.FileInfo }

func (k fileKey) same(o fileKey) bool {
	return k.fi != nil && o.fi != nil && os.SameFile(k.fi, o.fi) && k.fi.Size() == o.fi.Size() && k.fi.ModTime().Equal(o.fi.ModTime()) &&
		atomicfile.ChangeTime(k.fi).Equal(atomicfile.ChangeTime(o.fi))
}

func statKey(path string) (fileKey, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileKey{}, false
	}
	return fileKey{fi}, true
}

// cloneIndex copies idx deep enough that changing the copy's entries, their
// annotations or platforms leaves idx as it was.
func cloneIndex(idx ocispec.Index) ocispec.Index {
	out := idx
	out.Annotations = maps.Clone(idx.Annotations)
	if idx.Manifests != nil {
		out.Manifests = make([]ocispec.Descriptor, len(idx.Manifests))
		for i, d := range idx.Manifests {
			out.Manifests[i] = cloneDesc(d)
		}
	}
	return out
}

// cloneDesc copies d deep enough that changing the copy's annotations,
// URLs or platform leaves d as it was.
func cloneDesc(d ocispec.Descriptor) ocispec.Descriptor {
	d.Annotations = maps.Clone(d.Annotations)
	d.URLs = slices.Clone(d.URLs)
	d.Data = slices.Clone(d.Data)
	if d.Platform != nil {
		p := *d.Platform
		p.OSFeatures = slices.Clone(p.OSFeatures)
		d.Platform = &p
	}
	return d
}

// indexReads counts index.json parses, indexWrites the writes of queued
// updates (tests).
var indexReads, indexWrites atomic.Int64

func (s *Store) readIndex() (ocispec.Index, error) {
	indexReads.Add(1)
	f, err := os.Open(s.indexPath())
	if err != nil {
		if isNotExist(err) {
			return ocispec.Index{}, fmt.Errorf("oci layout %s: no %s: %w", s.dir, ocispec.ImageIndexFile, core.ErrNotFound)
		}
		return ocispec.Index{}, fmt.Errorf("oci layout %s: %w", s.dir, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxIndexSize+1))
	if err != nil {
		return ocispec.Index{}, fmt.Errorf("oci layout %s: read %s: %w", s.dir, ocispec.ImageIndexFile, err)
	}
	if len(b) > maxIndexSize {
		return ocispec.Index{}, fmt.Errorf("oci layout %s: %s is over %d bytes: %w", s.dir, ocispec.ImageIndexFile, maxIndexSize, core.ErrTooLarge)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return ocispec.Index{}, fmt.Errorf("oci layout %s: %s: %v: %w", s.dir, ocispec.ImageIndexFile, err, core.ErrInvalid)
	}
	if idx.SchemaVersion != 2 {
		return ocispec.Index{}, fmt.Errorf("oci layout %s: %s has schemaVersion %d, want 2: %w", s.dir, ocispec.ImageIndexFile, idx.SchemaVersion, core.ErrInvalid)
	}
	for i, d := range idx.Manifests {
		if err := d.Digest.Validate(); err != nil {
			return ocispec.Index{}, fmt.Errorf("oci layout %s: %s: manifests[%d]: digest %q: %v: %w", s.dir, ocispec.ImageIndexFile, i, d.Digest, err, core.ErrInvalid)
		}
		if d.Size < 0 {
			return ocispec.Index{}, fmt.Errorf("oci layout %s: %s: manifests[%d]: %s has negative size %d: %w", s.dir, ocispec.ImageIndexFile, i, d.Digest, d.Size, core.ErrInvalid)
		}
	}
	return idx, nil
}

// writeIndex replaces index.json atomically. Callers hold the lock.
func (s *Store) writeIndex(idx ocispec.Index) error {
	idx.SchemaVersion = 2
	if idx.MediaType == "" {
		idx.MediaType = ocispec.MediaTypeImageIndex
	}
	if idx.Manifests == nil {
		idx.Manifests = []ocispec.Descriptor{} // "manifests": [] rather than null
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return fmt.Errorf("oci layout %s: encode %s: %w", s.dir, ocispec.ImageIndexFile, err)
	}
	if err := atomicfile.Write(s.indexPath(), b); err != nil {
		return fmt.Errorf("oci layout %s: write %s: %w", s.dir, ocispec.ImageIndexFile, err)
	}
	// What was just written is what the next read would parse (callers
	// hold the lock, so no writer of ours comes between). idx is the
	// cache's from here on: callers give it up.
	if key, ok := statKey(s.indexPath()); ok {
		s.cache.mu.Lock()
		s.cache.key, s.cache.idx = key, idx
		s.cache.mu.Unlock()
	}
	return nil
}

// update reads index.json under the exclusive lock (parsed again only if it
// changed since it was last read or written here), lets fn change it, and
// writes it back, together with the updates of other callers queued by then
// (updateQueue). fn changes the list of entries, never an entry in place;
// fn returning an error leaves index.json as the other updates make it.
func (s *Store) update(ctx context.Context, fn func(*ocispec.Index) error) error {
	u := &indexUpdate{ctx: ctx, fn: fn, done: make(chan error, 1)}
	q := &s.updates
	q.mu.Lock()
	q.queue = append(q.queue, u)
	if q.writer == nil {
		q.writer = make(chan struct{}, 1)
	}
	writer := q.writer
	q.mu.Unlock()
	for {
		select {
		case err := <-u.done:
			return err
		default:
		}
		if ctx.Err() != nil {
			if q.remove(u) {
				return ctx.Err()
			}
			return <-u.done // a writer took it: its outcome comes
		}
		select {
		case err := <-u.done:
			return err
		case writer <- struct{}{}:
			s.writeQueued(ctx)
			<-writer
		case <-ctx.Done():
		}
	}
}

// updateQueue batches the index.json updates of concurrent callers: one of
// them at a time writes, and applies every update queued by then in one
// write (a sync tagging images in parallel wrote and fsynced the whole
// index.json once per tag). Each caller still returns only once its update
// is durable, or refused.
type updateQueue struct {
	mu     sync.Mutex
	queue  []*indexUpdate
	writer chan struct{} // holds a token while a caller writes
}

type indexUpdate struct {
	ctx  context.Context
	fn   func(*ocispec.Index) error
	done chan error // its outcome, once
}

// remove takes u off the queue; false if a writer already took it.
func (q *updateQueue) remove(u *indexUpdate) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, v := range q.queue {
		if v == u {
			q.queue = slices.Delete(q.queue, i, i+1)
			return true
		}
	}
	return false
}

func (q *updateQueue) take() []*indexUpdate {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch := q.queue
	q.queue = nil
	return batch
}

// writeQueued applies the queued updates under the layout's lock and writes
// index.json once. ctx is the writing caller's: if it ends while waiting for
// the lock, the queue is left to the other callers.
func (s *Store) writeQueued(ctx context.Context) {
	unlock, err := s.lock(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		for _, u := range s.updates.take() {
			u.done <- err
		}
		return
	}
	defer unlock()
	batch := s.updates.take()
	if len(batch) == 0 {
		return
	}
	idx, err := s.snapshot(context.WithoutCancel(ctx))
	if err != nil {
		for _, u := range batch {
			u.done <- err
		}
		return
	}
	// Each fn changes a copy of the list of entries, never an entry in
	// place (it replaces an entry to change it): the shared snapshot stays
	// as it was, and a refused update leaves the others' as they were.
	idx.Annotations = maps.Clone(idx.Annotations)
	var applied []*indexUpdate
	for _, u := range batch {
		if err := u.ctx.Err(); err != nil {
			u.done <- err
			continue
		}
		trial := idx
		trial.Manifests = slices.Clone(idx.Manifests)
		if err := u.fn(&trial); err != nil {
			u.done <- err
			continue
		}
		idx = trial
		applied = append(applied, u)
	}
	if len(applied) == 0 {
		return
	}
	indexWrites.Add(1)
	err = s.writeIndex(idx)
	for _, u := range applied {
		u.done <- err
	}
}

// isDigestRef says whether ref is meant as a digest: it starts with the name
// of a digest algorithm and a colon. Such strings are never taken as names.
func isDigestRef(ref string) bool {
	alg, _, ok := strings.Cut(ref, ":")
	if !ok {
		return false
	}
	switch digest.Algorithm(alg) {
	case digest.SHA256, digest.SHA384, digest.SHA512:
		return true
	}
	return false
}

// refName is the entry's ref.name annotation, "" when untagged.
func refName(d ocispec.Descriptor) string { return d.Annotations[ocispec.AnnotationRefName] }

// matchName returns the positions of the entries a name selects: entries
// whose ref.name is name; failing that, whose containerd image name is
// name; failing that, whose ref.name is a full image name ("repo:name",
// written by some tools) with tag name.
func matchName(entries []ocispec.Descriptor, name string) []int {
	var exact, full, suffix []int
	isTag := !strings.ContainsAny(name, ":/")
	for i, e := range entries {
		rn := refName(e)
		switch {
		case rn == name:
			exact = append(exact, i)
		case e.Annotations[containerdNameAnnotation] == name:
			full = append(full, i)
		case isTag && strings.HasSuffix(rn, ":"+name):
			suffix = append(suffix, i)
		}
	}
	switch {
	case len(exact) > 0:
		return exact
	case len(full) > 0:
		return full
	}
	return suffix
}

// Resolve returns the index.json entry (annotations included) that ref
// selects:
//   - a name: the entry whose org.opencontainers.image.ref.name annotation
//     is ref (skopeo, umoci); or whose io.containerd.image.name is ref; or
//     whose ref.name is a full image name "repo:ref";
//   - a digest ("sha256:..."): an entry with that digest, else a manifest or
//     index blob present in the layout (its media type read from the blob);
//   - "": the only image of the layout (several entries with one digest
//     count as one image); otherwise an error listing the names.
//
// Nothing found wraps core.ErrNotFound; a name matching different digests
// wraps core.ErrInvalid.
func (s *Store) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	d, err := s.resolve(ctx, ref)
	if err != nil {
		return d, err
	}
	return cloneDesc(d), nil // the caller's: not the shared snapshot's
}

func (s *Store) resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	idx, err := s.snapshot(ctx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	switch {
	case ref == "":
		return s.resolveDefault(idx)
	case isDigestRef(ref):
		return s.resolveDigest(ctx, idx, digest.Digest(ref))
	}
	matches := matchName(idx.Manifests, ref)
	if len(matches) == 0 {
		return ocispec.Descriptor{}, fmt.Errorf("oci layout %s: no image named %q (have: %s): %w", s.dir, ref, describeEntries(idx.Manifests), core.ErrNotFound)
	}
	first := idx.Manifests[matches[0]]
	for _, i := range matches[1:] {
		if idx.Manifests[i].Digest != first.Digest {
			return ocispec.Descriptor{}, fmt.Errorf("oci layout %s: name %q is ambiguous: it names %s and %s: %w", s.dir, ref, first.Digest, idx.Manifests[i].Digest, core.ErrInvalid)
		}
	}
	return first, nil
}

func (s *Store) resolveDefault(idx ocispec.Index) (ocispec.Descriptor, error) {
	if len(idx.Manifests) == 0 {
		return ocispec.Descriptor{}, fmt.Errorf("oci layout %s: holds no image: %w", s.dir, core.ErrNotFound)
	}
	first := idx.Manifests[0]
	for _, e := range idx.Manifests[1:] {
		if e.Digest != first.Digest {
			return ocispec.Descriptor{}, fmt.Errorf("oci layout %s: holds %d images, name one of: %s: %w", s.dir, len(idx.Manifests), describeEntries(idx.Manifests), core.ErrInvalid)
		}
	}
	return first, nil
}

func (s *Store) resolveDigest(ctx context.Context, idx ocispec.Index, d digest.Digest) (ocispec.Descriptor, error) {
	if err := checkDigest(d); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("oci layout %s: %w", s.dir, err)
	}
	for _, e := range idx.Manifests {
		if e.Digest == d {
			return e, nil
		}
	}
	// Not top-level: a child manifest of an index, stored by digest only.
	size, err := s.Stat(ctx, d)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{Digest: d, Size: size}
	b, err := s.ReadBlob(ctx, desc, content.MaxManifestSize)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	mt, err := sniffMediaType(b)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("oci layout %s: blob %s: %w", s.dir, d, err)
	}
	desc.MediaType = mt
	return desc, nil
}

// sniffMediaType finds the media type of a manifest or index from its own
// mediaType field, or from its shape when the field is absent (it is
// optional in OCI manifests).
func sniffMediaType(b []byte) (string, error) {
	var probe struct {
		MediaType string          `json:"mediaType"`
		Config    json.RawMessage `json:"config"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return "", fmt.Errorf("not a manifest (not a JSON object): %w", core.ErrInvalid)
	}
	switch {
	case probe.MediaType != "":
		return probe.MediaType, nil
	case probe.Manifests != nil:
		return ocispec.MediaTypeImageIndex, nil
	case probe.Config != nil:
		return ocispec.MediaTypeImageManifest, nil
	}
	return "", fmt.Errorf("not a manifest (no mediaType, config or manifests): %w", core.ErrInvalid)
}

// describeEntries lists the names (or digests of untagged entries) for an
// error message.
func describeEntries(entries []ocispec.Descriptor) string {
	if len(entries) == 0 {
		return "nothing"
	}
	// The first few: an error line listing thousands of tags is neither
	// one clear line nor cheap (a sync asks for each tag it has yet to
	// write, and each miss built it).
	const shown = 10
	var parts []string
	for _, e := range entries[:min(len(entries), shown)] {
		if n := refName(e); n != "" {
			parts = append(parts, n)
		} else {
			parts = append(parts, e.Digest.String()+" (untagged)")
		}
	}
	if len(entries) > shown {
		parts = append(parts, fmt.Sprintf("and %d more", len(entries)-shown))
	}
	return strings.Join(parts, ", ")
}

// checkName accepts ref.name values: non-empty, printable, made of the
// characters of the image-spec ref.name grammar (letters, digits, and
// - . _ : @ + /), starting with a letter or digit, and not shaped like a
// digest. It is looser than the grammar on separator placement so that
// any registry tag can be stored.
func checkName(name string) error {
	if err := grammar.LayoutName(name); err != nil {
		return err
	}
	if isDigestRef(name) {
		return fmt.Errorf("image name %q looks like a digest: %w", name, core.ErrInvalid)
	}
	return nil
}

// Tag records desc in index.json under name, replacing whatever entry had
// that name. name "" (or desc's own digest) records an untagged entry,
// unless an entry with that digest already exists. The blob must be present
// with desc's size (core.ErrNotFound otherwise). An empty desc.MediaType is
// read from the blob. Platform, annotations and artifactType of desc are
// kept in the entry.
func (s *Store) Tag(ctx context.Context, desc ocispec.Descriptor, name string) error {
	if name == desc.Digest.String() {
		name = ""
	}
	if name != "" {
		if err := checkName(name); err != nil {
			return fmt.Errorf("oci layout %s: tag: %w", s.dir, err)
		}
	}
	size, err := s.Stat(ctx, desc.Digest)
	if err != nil {
		return err
	}
	if size != desc.Size {
		return fmt.Errorf("oci layout %s: tag %q: %w", s.dir, name, &core.SizeMismatchError{Digest: desc.Digest, Expected: desc.Size, Actual: size})
	}
	entry := desc
	entry.Data = nil
	if entry.MediaType == "" {
		b, err := s.ReadBlob(ctx, desc, content.MaxManifestSize)
		if err != nil {
			return err
		}
		if entry.MediaType, err = sniffMediaType(b); err != nil {
			return fmt.Errorf("oci layout %s: blob %s: %w", s.dir, desc.Digest, err)
		}
	}
	entry.Annotations = make(map[string]string, len(desc.Annotations)+1)
	for k, v := range desc.Annotations {
		entry.Annotations[k] = v
	}
	delete(entry.Annotations, ocispec.AnnotationRefName)
	if name != "" {
		entry.Annotations[ocispec.AnnotationRefName] = name
	}
	if len(entry.Annotations) == 0 {
		entry.Annotations = nil
	}
	return s.update(ctx, func(idx *ocispec.Index) error {
		// Again under the lock: a garbage collector sharing the layout
		// (stevedore serve's gc) may have removed it since.
		if _, err := s.Stat(ctx, desc.Digest); err != nil {
			return fmt.Errorf("tag %q: %w", name, err)
		}
		if name == "" {
			for _, e := range idx.Manifests {
				if e.Digest == entry.Digest {
					return nil
				}
			}
			idx.Manifests = append(idx.Manifests, entry)
			return nil
		}
		out := idx.Manifests[:0]
		placed := false
		for _, e := range idx.Manifests {
			if refName(e) != name {
				out = append(out, e)
			} else if !placed {
				out = append(out, entry) // keep the position of the old entry
				placed = true
			}
		}
		if !placed {
			out = append(out, entry)
		}
		idx.Manifests = out
		return nil
	})
}

// Referrers lists the manifests index.json lists whose subject is subject
// (of artifactType, unless ""), as the distribution spec's referrers API
// describes them (manifest.ReferrersAmong). Each manifest is read once per
// Store: what it refers to is remembered by digest.
func (s *Store) Referrers(ctx context.Context, subject digest.Digest, artifactType string) ([]ocispec.Descriptor, error) {
	idx, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	by, err := s.referrersOf(ctx, idx)
	if err != nil {
		return nil, err
	}
	if by == nil {
		// A version of index.json asked about once so far (a sync's
		// target changes with each tag it writes): one pass over it.
		return s.refs.Among(ctx, idx.Manifests, subject, artifactType, s.readManifestBlob)
	}
	out := []ocispec.Descriptor{}
	for _, d := range by[subject] {
		if artifactType == "" || d.ArtifactType == artifactType {
			out = append(out, cloneDesc(d))
		}
	}
	return out, nil
}

// readManifestBlob reads a blob as a manifest, up to a manifest's size limit.
func (s *Store) readManifestBlob(ctx context.Context, d ocispec.Descriptor) ([]byte, error) {
	return s.ReadBlob(ctx, d, content.MaxManifestSize)
}

// referrersByIndex is the referrers of every subject among the entries of
// one version of index.json, built the second time that version is asked
// about, so that listing the referrers of each of thousands of images of
// an unchanging layout (a sync's source) does not go through every entry
// for each; a version asked about once (a target written between asks)
// is not worth building.
type referrersByIndex struct {
	mu      sync.Mutex
	first   *ocispec.Descriptor // idx.Manifests[0] of the version it is of
	n       int
	asked   int
	subject map[digest.Digest][]ocispec.Descriptor
}

// referrersOf returns the referrers of idx by subject, or nil when idx is
// a version asked about for the first time.
func (s *Store) referrersOf(ctx context.Context, idx ocispec.Index) (map[digest.Digest][]ocispec.Descriptor, error) {
	var first *ocispec.Descriptor
	if len(idx.Manifests) > 0 {
		first = &idx.Manifests[0] // a new version of index.json is a new slice
	}
	b := &s.refsBy
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.first != first || b.n != len(idx.Manifests) || (b.subject == nil && b.asked == 0) {
		b.first, b.n, b.asked, b.subject = first, len(idx.Manifests), 1, nil
		return nil, nil
	}
	if b.subject != nil {
		return b.subject, nil
	}
	m, err := s.refs.BySubject(ctx, idx.Manifests, s.readManifestBlob)
	if err != nil {
		return nil, err
	}
	b.subject = m
	return m, nil
}

// Tags lists the ref.name values of index.json, sorted, without duplicates.
func (s *Store) Tags(ctx context.Context) ([]string, error) {
	idx, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	tags := []string{}
	for _, e := range idx.Manifests {
		if n := refName(e); n != "" && !seen[n] {
			seen[n] = true
			tags = append(tags, n)
		}
	}
	sort.Strings(tags)
	return tags, nil
}

// Untag removes the entries that the name selects (as Resolve matches
// names). Blobs stay. No such name wraps core.ErrNotFound.
func (s *Store) Untag(ctx context.Context, name string) error {
	return s.update(ctx, func(idx *ocispec.Index) error {
		matches := matchName(idx.Manifests, name)
		if name == "" || len(matches) == 0 {
			return fmt.Errorf("oci layout %s: no image named %q: %w", s.dir, name, core.ErrNotFound)
		}
		idx.Manifests = removeAt(idx.Manifests, matches)
		return nil
	})
}

// Delete removes ref from index.json: a name as Untag does, a digest by
// removing every entry with that digest. Blobs stay. Nothing to remove wraps
// core.ErrNotFound.
func (s *Store) Delete(ctx context.Context, ref string) error {
	if !isDigestRef(ref) {
		return s.Untag(ctx, ref)
	}
	d := digest.Digest(ref)
	if err := checkDigest(d); err != nil {
		return fmt.Errorf("oci layout %s: %w", s.dir, err)
	}
	return s.update(ctx, func(idx *ocispec.Index) error {
		var matches []int
		for i, e := range idx.Manifests {
			if e.Digest == d {
				matches = append(matches, i)
			}
		}
		if len(matches) == 0 {
			return fmt.Errorf("oci layout %s: no image with digest %s: %w", s.dir, d, core.ErrNotFound)
		}
		idx.Manifests = removeAt(idx.Manifests, matches)
		return nil
	})
}

// removeAt drops the entries at the given ascending positions.
func removeAt(entries []ocispec.Descriptor, positions []int) []ocispec.Descriptor {
	drop := make(map[int]bool, len(positions))
	for _, p := range positions {
		drop[p] = true
	}
	out := make([]ocispec.Descriptor, 0, len(entries)-len(positions))
	for i, e := range entries {
		if !drop[i] {
			out = append(out, e)
		}
	}
	return out
}
