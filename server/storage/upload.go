package storage

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/stevedore-oci/stevedore/core"
)

// ErrRange reports a chunk that does not start where the upload ends.
var ErrRange = errors.New("chunk does not start at the upload's current offset")

// validUploadID reports whether id has the form of the ids newUpload makes:
// 32 lower-case hex digits (checked by hand, not by a regexp compiled at the
// start of every stevedore command).
func validUploadID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Upload is a resumable blob upload session. Its bytes are hashed while they
// are received; the hash state is persisted after every chunk, so a session
// survives a dropped connection and a server restart.
type Upload struct {
	s    *Store
	id   string
	repo string
	dir  string

	mu      sync.Mutex // one request at a time
	f       *os.File   // the data file, open only while a request uses it
	h       hash.Hash  // sha256 of bytes [0, offset)
	offset  int64
	started time.Time
	updated time.Time
	done    bool
}

type uploadState struct {
	Repo    string    `json:"repo"`
	Offset  int64     `json:"offset"`
	SHA256  []byte    `json:"sha256State"`
	Started time.Time `json:"started"`
	Updated time.Time `json:"updated"`
}

// ID is the session's identifier (32 hex digits).
func (u *Upload) ID() string { return u.id }

// Offset is the number of bytes received so far.
func (u *Upload) Offset() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.offset
}

// NewUpload starts an upload session for repository name.
func (s *Store) NewUpload(name string) (*Upload, error) {
	s.expireUploads()
	id := randomHex(16)
	dir := filepath.Join(s.root, uploadsDirName, id)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("repository %s: new upload: %w", name, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("repository %s: new upload: %w", name, err)
	}
	if err := f.Close(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("repository %s: new upload: %w", name, err)
	}
	now := time.Now()
	u := &Upload{s: s, id: id, repo: name, dir: dir, h: sha256.New(), started: now, updated: now}
	if err := u.saveState(); err != nil {
		u.discard()
		return nil, fmt.Errorf("repository %s: new upload: %w", name, err)
	}
	s.uploadsMu.Lock()
	s.uploads[id] = u
	s.uploadsMu.Unlock()
	return u, nil
}

// Upload finds session id of repository name, reloading it from disk after
// a restart. Unknown, expired or foreign sessions wrap core.ErrNotFound.
func (s *Store) Upload(name, id string) (*Upload, error) {
	notFound := fmt.Errorf("repository %s: upload %q: %w", name, id, core.ErrNotFound)
	if !validUploadID(id) {
		return nil, notFound
	}
	s.uploadsMu.Lock()
	defer s.uploadsMu.Unlock()
	if u, ok := s.uploads[id]; ok {
		if u.repo != name {
			return nil, notFound
		}
		return u, nil
	}
	u, err := s.loadUpload(id)
	if err != nil || u.repo != name {
		return nil, notFound
	}
	if time.Since(u.updated) > s.opts.UploadTTL {
		u.discard()
		return nil, notFound
	}
	s.uploads[id] = u
	return u, nil
}

// UploadCount is the number of sessions open in this process.
func (s *Store) UploadCount() int {
	s.uploadsMu.Lock()
	defer s.uploadsMu.Unlock()
	return len(s.uploads)
}

func (s *Store) loadUpload(id string) (*Upload, error) {
	dir := filepath.Join(s.root, uploadsDirName, id)
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, err
	}
	var st uploadState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	if ValidateName(st.Repo) != nil {
		return nil, core.ErrInvalid
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.SHA256); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "data"), os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil || fi.Size() < st.Offset {
		// The data did not reach the disk before a crash: unusable.
		_ = f.Close()
		return nil, core.ErrInvalid
	}
	if fi.Size() > st.Offset {
		// Bytes written after the last saved state are dropped; the
		// client learns the real offset from the upload status.
		if err := f.Truncate(st.Offset); err != nil {
			_ = f.Close()
			return nil, err
		}
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return &Upload{s: s, id: id, repo: st.Repo, dir: dir, h: h, offset: st.Offset, started: st.Started, updated: st.Updated}, nil
}

// open opens the data file for a request, positioned at the offset. A
// session keeps no file open between requests: sessions a client opened and
// left (each lives for the upload TTL) would hold a descriptor each, and a
// few thousand POSTs exhausted the server's. Called with u.mu held.
func (u *Upload) open() error {
	if u.f != nil {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(u.dir, "data"), os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if _, err := f.Seek(u.offset, io.SeekStart); err != nil {
		_ = f.Close()
		return err
	}
	u.f = f
	return nil
}

// close closes the data file a request opened. Called with u.mu held.
func (u *Upload) close() {
	if u.f != nil {
		_ = u.f.Close()
		u.f = nil
	}
}

func (u *Upload) saveState() error {
	hs, err := u.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	b, _ := json.Marshal(uploadState{Repo: u.repo, Offset: u.offset, SHA256: hs, Started: u.started, Updated: u.updated})
	// No fsync: after a crash, state older than the data only truncates the
	// data to the saved offset (see loadUpload).
	tmp := filepath.Join(u.dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(u.dir, "state.json"))
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// Write appends r's bytes to the session. start is the chunk's first byte
// from Content-Range, or -1 when the request had none; a chunk that does not
// start at the current offset gives ErrRange and changes nothing. Bytes
// received before a read error are kept (the client resumes after them).
// The session is refused to grow past the store's MaxUploadSize
// (core.ErrTooLarge).
func (u *Upload) Write(ctx context.Context, r io.Reader, start int64) (int64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return 0, fmt.Errorf("upload %s: %w", u.id, core.ErrNotFound)
	}
	if start >= 0 && start != u.offset {
		return 0, fmt.Errorf("upload %s: chunk starts at %d, upload is at %d: %w", u.id, start, u.offset, ErrRange)
	}
	if err := u.open(); err != nil {
		return 0, fmt.Errorf("upload %s: %w", u.id, err)
	}
	defer u.close()
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	max := u.s.opts.MaxUploadSize
	var n int64
	var err error
	for {
		if err = ctx.Err(); err != nil {
			break
		}
		var m int
		m, err = r.Read(buf)
		if m > 0 {
			if max > 0 && u.offset+int64(m) > max {
				err = fmt.Errorf("upload %s: blob exceeds the %d byte limit: %w", u.id, max, core.ErrTooLarge)
				break
			}
			w, werr := u.f.Write(buf[:m])
			u.h.Write(buf[:w])
			u.offset += int64(w)
			n += int64(w)
			if werr != nil {
				err = werr
				break
			}
		}
		if err == io.EOF {
			err = nil
			break
		}
		if err != nil {
			break
		}
	}
	u.updated = time.Now()
	if serr := u.saveState(); serr != nil && err == nil {
		err = serr
	}
	if err != nil {
		return n, fmt.Errorf("upload %s: %w", u.id, err)
	}
	return n, nil
}

// Commit verifies the session's content against d (and size, unless it is
// negative), then makes it blob d of the repository and ends the session.
// On a mismatch the session stays open and nothing becomes visible.
func (u *Upload) Commit(ctx context.Context, d digest.Digest, size int64) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return fmt.Errorf("upload %s: %w", u.id, core.ErrNotFound)
	}
	if size >= 0 && size != u.offset {
		return &core.SizeMismatchError{Digest: d, Expected: size, Actual: u.offset}
	}
	if err := u.open(); err != nil {
		return fmt.Errorf("upload %s: %w", u.id, err)
	}
	defer u.close()
	var actual digest.Digest
	if d.Algorithm() == digest.SHA256 {
		actual = digest.NewDigest(digest.SHA256, u.h)
	} else {
		// Only sha256 is hashed while receiving (the algorithm is unknown
		// until this request); others are hashed once more here.
		h := d.Algorithm().Hash()
		if _, err := io.Copy(h, io.NewSectionReader(u.f, 0, u.offset)); err != nil {
			return fmt.Errorf("upload %s: %w", u.id, err)
		}
		actual = digest.NewDigest(d.Algorithm(), h)
	}
	if actual != d {
		return &core.DigestMismatchError{Expected: d, Actual: actual}
	}
	if err := u.f.Chmod(filePerm); err != nil {
		return err
	}
	if err := u.f.Sync(); err != nil {
		return fmt.Errorf("upload %s: %w", u.id, err)
	}
	if err := u.s.storeVerified(ctx, u.repo, d, filepath.Join(u.dir, "data"), false); err != nil {
		u.done = true
		u.discardLocked()
		return err
	}
	u.done = true
	u.discardLocked()
	return nil
}

// Cancel ends the session and deletes its data.
func (u *Upload) Cancel() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.done = true
	u.discardLocked()
}

func (u *Upload) discard() {
	u.close()
	_ = os.RemoveAll(u.dir)
}

func (u *Upload) discardLocked() {
	u.discard()
	u.s.uploadsMu.Lock()
	delete(u.s.uploads, u.id)
	u.s.uploadsMu.Unlock()
}

// expireUploads drops sessions idle for longer than UploadTTL, at most once
// a minute.
func (s *Store) expireUploads() {
	s.uploadsMu.Lock()
	if time.Since(s.lastExpired) < time.Minute {
		s.uploadsMu.Unlock()
		return
	}
	s.lastExpired = time.Now()
	var stale []*Upload
	for id, u := range s.uploads {
		if u.mu.TryLock() {
			if time.Since(u.updated) > s.opts.UploadTTL {
				u.done = true
				stale = append(stale, u)
				delete(s.uploads, id)
			}
			u.mu.Unlock()
		}
	}
	s.uploadsMu.Unlock()
	for _, u := range stale {
		u.discard()
	}
	s.SweepUploads(s.opts.UploadTTL)
}

// SweepUploads removes session directories on disk (including those of
// other or earlier processes) idle for longer than ttl, and stray temporary
// files. Sessions open in this process are left alone.
func (s *Store) SweepUploads(ttl time.Duration) int { return s.sweepUploads(ttl, false) }

// sweepUploads is SweepUploads; a dry run only counts.
func (s *Store) sweepUploads(ttl time.Duration, dryRun bool) int {
	dir := filepath.Join(s.root, uploadsDirName)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		s.uploadsMu.Lock()
		_, live := s.uploads[e.Name()]
		s.uploadsMu.Unlock()
		if live {
			continue
		}
		p := filepath.Join(dir, e.Name())
		probe := p
		if e.IsDir() {
			probe = filepath.Join(p, "state.json")
		}
		fi, err := os.Stat(probe)
		if err != nil {
			fi, err = os.Stat(p)
			if err != nil {
				continue
			}
		}
		if time.Since(fi.ModTime()) > ttl {
			if dryRun || os.RemoveAll(p) == nil {
				n++
			}
		}
	}
	return n
}
