package dirtransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
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
const Transport = "dir"

const (
	versionFile    = "version"
	versionContent = "Directory Transport Version: 1.1\n"
	versionPrefix  = "Directory Transport Version: "
	manifestFile   = "manifest.json"
	manifestSuffix = ".manifest.json"
	// signaturePrefix starts the signature files, numbered from 1:
	// signature-N for the directory's image, <hex>.signature-N for a child
	// of its index (skopeo's layout).
	signaturePrefix = "signature-"
	maxVersionBytes = 1024
)

// Plugin serves the dir: transport.
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

// Open implements pluginapi.Plugin.
func (p *Plugin) Open(ctx context.Context, req pluginapi.OpenRequest) (pluginapi.Endpoint, error) {
	if req.Transport != Transport {
		return nil, fmt.Errorf("transport %q is not served by the dir plugin: %w", req.Transport, core.ErrUnsupported)
	}
	if req.Location == "" {
		return nil, fmt.Errorf("dir: empty path: %w", core.ErrInvalid)
	}
	switch req.Mode {
	case pluginapi.ModeRead:
		return openSource(req.Location)
	case pluginapi.ModeWrite:
		return openDest(req.Location)
	}
	return nil, fmt.Errorf("dir %s: mode %s: %w", req.Location, req.Mode, core.ErrUnsupported)
}

// blobName is the file name of a blob: its encoded digest, as skopeo does.
func blobName(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("digest %q: %v: %w", d, err, core.ErrInvalid)
	}
	return d.Encoded(), nil
}

// checkVersion accepts the version files skopeo writes (1.0 and 1.1).
func checkVersion(dir string) error {
	f, err := os.Open(filepath.Join(dir, versionFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("dir %s: not a dir: image (no %s file): %w", dir, versionFile, core.ErrNotFound)
		}
		return fmt.Errorf("dir %s: %w", dir, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxVersionBytes))
	if err != nil {
		return fmt.Errorf("dir %s: read %s: %w", dir, versionFile, err)
	}
	v, ok := strings.CutPrefix(strings.TrimSpace(string(b)), versionPrefix)
	if !ok || (v != "1.0" && v != "1.1") {
		return fmt.Errorf("dir %s: unsupported %s %q: %w", dir, versionFile, strings.TrimSpace(string(b)), core.ErrUnsupported)
	}
	return nil
}

// source reads a dir: image.
type source struct{ dir string }

func openSource(dir string) (*source, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("dir %s: %w", dir, core.ErrNotFound)
		}
		return nil, fmt.Errorf("dir %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("dir %s: not a directory: %w", dir, core.ErrInvalid)
	}
	if err := checkVersion(dir); err != nil {
		return nil, err
	}
	return &source{dir: dir}, nil
}

func (s *source) Close(context.Context) error { return nil }

func (s *source) readSmall(name string) ([]byte, error) {
	f, err := os.Open(filepath.Join(s.dir, name))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("dir %s: %s: %w", s.dir, name, core.ErrNotFound)
		}
		return nil, fmt.Errorf("dir %s: %w", s.dir, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, content.MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("dir %s: read %s: %w", s.dir, name, err)
	}
	if len(b) > content.MaxManifestSize {
		return nil, fmt.Errorf("dir %s: %s is over %d bytes: %w", s.dir, name, content.MaxManifestSize, core.ErrTooLarge)
	}
	return b, nil
}

// findManifest returns the bytes of the manifest with digest d: the
// top-level manifest.json, a child <hex>.manifest.json, or a plain blob.
func (s *source) findManifest(d digest.Digest) ([]byte, error) {
	name, err := blobName(d)
	if err != nil {
		return nil, fmt.Errorf("dir %s: %w", s.dir, err)
	}
	for _, n := range []string{name + manifestSuffix, manifestFile, name} {
		b, err := s.readSmall(n)
		if errors.Is(err, core.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n != manifestFile || d.Algorithm().FromBytes(b) == d {
			return b, nil
		}
	}
	return nil, fmt.Errorf("dir %s: manifest %s: %w", s.dir, d, core.ErrNotFound)
}

// Resolve accepts "" (the image of the directory) or the digest of a
// manifest held in it.
func (s *source) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	var b []byte
	var err error
	switch {
	case ref == "":
		b, err = s.readSmall(manifestFile)
	case isDigest(ref):
		b, err = s.findManifest(digest.Digest(ref))
	default:
		return ocispec.Descriptor{}, fmt.Errorf("dir %s: holds one image and takes no reference (got %q): %w", s.dir, ref, core.ErrInvalid)
	}
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc, err := manifest.Descriptor(b, "")
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("dir %s: %w", s.dir, err)
	}
	return desc, nil
}

func isDigest(s string) bool { return digest.Digest(s).Validate() == nil }

func (s *source) GetManifest(ctx context.Context, desc ocispec.Descriptor) ([]byte, error) {
	return s.findManifest(desc.Digest)
}

// BlobPath returns the file holding a blob, or a manifest (manifest.json
// or <hex>.manifest.json).
func (s *source) BlobPath(ctx context.Context, desc ocispec.Descriptor) (string, error) {
	name, err := blobName(desc.Digest)
	if err != nil {
		return "", fmt.Errorf("dir %s: %w", s.dir, err)
	}
	p := filepath.Join(s.dir, name)
	if _, err := os.Stat(p); err != nil {
		if _, err := os.Stat(p + manifestSuffix); err == nil {
			p += manifestSuffix
		} else if b, err := s.readSmall(manifestFile); err == nil && desc.Digest.Algorithm().FromBytes(b) == desc.Digest {
			p = filepath.Join(s.dir, manifestFile)
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("dir %s: blob %s: %w", s.dir, desc.Digest, core.ErrNotFound)
		}
		return "", fmt.Errorf("dir %s: blob %s: %w", s.dir, desc.Digest, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("dir %s: blob %s is not a regular file: %w", s.dir, desc.Digest, core.ErrInvalid)
	}
	return p, nil
}

func (s *source) GetBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	p, err := s.BlobPath(ctx, desc)
	if err != nil {
		return nil, err
	}
	f, err := atomicfile.OpenRegular(p, os.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("dir %s: blob %s: %w", s.dir, desc.Digest, err)
	}
	if offset > 0 {
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("dir %s: blob %s: %w", s.dir, desc.Digest, err)
		}
	}
	return f, nil
}

// signatureName is the file name of the n-th signature (from 1) of a
// manifest: signature-N for the directory's image, <hex>.signature-N for
// another manifest.
func signatureName(d digest.Digest, top bool, n int) string {
	if top {
		return signaturePrefix + strconv.Itoa(n)
	}
	return d.Encoded() + "." + signaturePrefix + strconv.Itoa(n)
}

// Signatures implements pluginapi.SignatureLister: the files signature-1,
// signature-2, ... (or <hex>.signature-N for a child manifest) up to the
// first number missing, as skopeo reads them.
func (s *source) Signatures(ctx context.Context, d digest.Digest) ([][]byte, error) {
	if _, err := blobName(d); err != nil {
		return nil, fmt.Errorf("dir %s: %w", s.dir, err)
	}
	top := false
	switch b, err := s.readSmall(manifestFile); {
	case err == nil:
		top = d.Algorithm().FromBytes(b) == d
	case !errors.Is(err, core.ErrNotFound):
		return nil, err
	}
	sigs := [][]byte{}
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := signatureName(d, top, n)
		f, err := os.Open(filepath.Join(s.dir, name))
		if errors.Is(err, os.ErrNotExist) {
			return sigs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("dir %s: %w", s.dir, err)
		}
		if n > pluginapi.MaxSignatures {
			f.Close()
			return nil, fmt.Errorf("dir %s: manifest %s has more than %d signatures: %w", s.dir, d, pluginapi.MaxSignatures, core.ErrTooLarge)
		}
		b, err := readSignature(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("dir %s: %s: %w", s.dir, name, err)
		}
		sigs = append(sigs, b)
	}
}

// readSignature reads one signature file, within the limits.
func readSignature(f *os.File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file: %w", core.ErrInvalid)
	}
	b, err := io.ReadAll(io.LimitReader(f, pluginapi.MaxSignatureSize+1))
	switch {
	case err != nil:
		return nil, err
	case len(b) > pluginapi.MaxSignatureSize:
		return nil, fmt.Errorf("signature over %d bytes: %w", pluginapi.MaxSignatureSize, core.ErrTooLarge)
	case len(b) == 0:
		return nil, fmt.Errorf("empty signature: %w", core.ErrInvalid)
	}
	return b, nil
}

// dest builds a dir: image in a staging directory beside the final one.
type dest struct {
	final, stage string
	held         *atomicfile.StageDir
	log          hclog.Logger
	// made are the directories above final this writer made, removed
	// again (when empty) if the image is given up.
	made []string

	mu        sync.Mutex
	manifests map[digest.Digest][]byte // put manifests, for choosing the top
	top       digest.Digest            // set by a PutManifest with a ref
	staged    map[string]ocispec.Descriptor
	sigs      map[digest.Digest]int // signature files staged per manifest
	committed bool
	closed    bool
}

func openDest(final string) (*dest, error) {
	// dir:current where current -> releases/v3 writes releases/v3, as
	// skopeo does; the swap in Commit would replace the link itself.
	resolved, err := atomicfile.FollowLinks(final)
	if err != nil {
		return nil, fmt.Errorf("dir %s: %w", final, err)
	}
	fi, err := os.Stat(resolved)
	switch {
	case err == nil && !fi.IsDir():
		return nil, fmt.Errorf("dir %s: exists and is not a directory: %w", final, core.ErrExists)
	case err == nil:
		if err := replaceable(resolved); err != nil {
			return nil, err
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("dir %s: %w", final, err)
	}
	abs, err := filepath.Abs(resolved)
	if err != nil {
		return nil, fmt.Errorf("dir %s: %w", final, err)
	}
	parent := filepath.Dir(abs)
	made, err := atomicfile.MkdirParents(parent)
	if err != nil {
		return nil, fmt.Errorf("dir %s: %w", final, err)
	}
	// What writers killed outright left behind (a live one holds its
	// staging directory).
	prefix := "." + filepath.Base(abs) + ".stevedore-tmp-"
	atomicfile.SweepStageDirs(parent, prefix)
	held, err := atomicfile.MkdirStage(parent, prefix)
	if err != nil {
		atomicfile.RemoveMadeDirs(made)
		return nil, fmt.Errorf("dir %s: staging directory: %w", final, err)
	}
	stage := held.Path
	fail := func(err error) (*dest, error) {
		os.RemoveAll(stage)
		held.Release()
		atomicfile.RemoveMadeDirs(made)
		return nil, fmt.Errorf("dir %s: %w", final, err)
	}
	if err := os.Chmod(stage, atomicfile.DirModeFor(abs)); err != nil {
		return fail(err)
	}
	d := &dest{final: abs, stage: stage, held: held, made: made, manifests: map[digest.Digest][]byte{}, sigs: map[digest.Digest]int{}}
	if err := atomicfile.Write(filepath.Join(stage, versionFile), []byte(versionContent)); err != nil {
		return fail(err)
	}
	return d, nil
}

// replaceable refuses to overwrite a non-empty directory that is not a dir:
// image (skopeo refuses too), so a typo never wipes unrelated files.
func replaceable(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("dir %s: %w", dir, err)
	}
	if len(ents) == 0 {
		return nil
	}
	if err := checkVersion(dir); err != nil {
		return fmt.Errorf("dir %s: exists, is not empty and is not a dir: image; refusing to replace it: %w", dir, core.ErrExists)
	}
	return nil
}

func (d *dest) HasBlob(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	name, err := blobName(desc.Digest)
	if err != nil {
		return false, fmt.Errorf("dir %s: %w", d.final, err)
	}
	fi, err := os.Stat(filepath.Join(d.stage, name))
	if err != nil {
		return false, nil
	}
	return fi.Mode().IsRegular() && fi.Size() == desc.Size, nil
}

func (d *dest) PutBlob(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	name, err := blobName(desc.Digest)
	if err != nil {
		return fmt.Errorf("dir %s: %w", d.final, err)
	}
	if err := atomicfile.WriteVerified(ctx, filepath.Join(d.stage, name), desc, r); err != nil {
		return fmt.Errorf("dir %s: blob %s: %w", d.final, desc.Digest, err)
	}
	return nil
}

// PutManifest stores a manifest. A ref (tag or digest) marks it as the
// image of the directory (manifest.json); "" stores it as a child,
// <hex>.manifest.json. Without any ref, Commit makes the manifest that no
// other one points to the image.
func (d *dest) PutManifest(ctx context.Context, desc ocispec.Descriptor, raw []byte, ref string) error {
	if err := content.VerifyBytes(raw, desc); err != nil {
		return fmt.Errorf("dir %s: manifest %s: %w", d.final, desc.Digest, err)
	}
	name, err := blobName(desc.Digest)
	if err != nil {
		return fmt.Errorf("dir %s: %w", d.final, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if ref != "" {
		if d.top != "" && d.top != desc.Digest {
			return fmt.Errorf("dir %s: holds one image; already given %s, now %s: %w", d.final, d.top, desc.Digest, core.ErrUnsupported)
		}
		d.top = desc.Digest
	}
	if err := atomicfile.Write(filepath.Join(d.stage, name+manifestSuffix), raw); err != nil {
		return fmt.Errorf("dir %s: manifest %s: %w", d.final, desc.Digest, err)
	}
	d.manifests[desc.Digest] = raw
	return nil
}

// chooseTop returns the digest of the directory's image.
func (d *dest) chooseTop() (digest.Digest, error) {
	if d.top != "" {
		return d.top, nil
	}
	children := map[digest.Digest]bool{}
	for _, raw := range d.manifests {
		if m, err := manifest.Parse(raw, ""); err == nil && m.IsIndex() {
			for _, c := range m.Manifests {
				children[c.Digest] = true
			}
		}
	}
	var roots []digest.Digest
	for dg := range d.manifests {
		if !children[dg] {
			roots = append(roots, dg)
		}
	}
	switch len(roots) {
	case 0:
		return "", fmt.Errorf("dir %s: no manifest was written: %w", d.final, core.ErrInvalid)
	case 1:
		return roots[0], nil
	}
	return "", fmt.Errorf("dir %s: holds one image but %d unrelated manifests were written: %w", d.final, len(roots), core.ErrInvalid)
}

// Commit moves the staged image under the final name, replacing an image
// directory that was there.
func (d *dest) Commit(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.committed || d.closed {
		return fmt.Errorf("dir %s: already committed or closed: %w", d.final, core.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	top, err := d.chooseTop()
	if err != nil {
		return err
	}
	// Staged blobs never committed must not move into the image.
	for p := range d.staged {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("dir %s: %w", d.final, err)
		}
	}
	d.staged = nil
	// The image is manifest.json; skopeo keeps <hex>.manifest.json only for
	// the children of an index.
	name := top.Encoded()
	if err := os.Rename(filepath.Join(d.stage, name+manifestSuffix), filepath.Join(d.stage, manifestFile)); err != nil {
		return fmt.Errorf("dir %s: %w", d.final, err)
	}
	// So are its signatures: signature-N, not <hex>.signature-N.
	for n := 1; n <= d.sigs[top]; n++ {
		if err := os.Rename(filepath.Join(d.stage, signatureName(top, false, n)), filepath.Join(d.stage, signatureName(top, true, n))); err != nil {
			return fmt.Errorf("dir %s: %w", d.final, err)
		}
	}
	if err := atomicfile.SyncDir(d.stage); err != nil {
		return fmt.Errorf("dir %s: %w", d.final, err)
	}
	// Writers of one directory swap one at a time (the check that the
	// directory there may be replaced and the swap are one step).
	unlock, err := atomicfile.LockTransient(ctx, filepath.Join(filepath.Dir(d.final), "."+filepath.Base(d.final)+".stevedore-lock"))
	if err != nil {
		return fmt.Errorf("dir %s: %w", d.final, err)
	}
	defer unlock()
	if err := swapInto(d.stage, d.final); err != nil {
		return fmt.Errorf("dir %s: %w", d.final, err)
	}
	d.committed = true
	return nil
}

// PutSignatures implements pluginapi.SignatureWriter. The manifest must
// have been written through this endpoint. Signatures are staged as
// <hex>.signature-N; Commit names those of the directory's image
// signature-N.
func (d *dest) PutSignatures(ctx context.Context, m digest.Digest, sigs [][]byte) error {
	if err := pluginapi.CheckSignatures(sigs); err != nil {
		return fmt.Errorf("dir %s: signatures of %s: %w", d.final, m, err)
	}
	if _, err := blobName(m); err != nil {
		return fmt.Errorf("dir %s: %w", d.final, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.committed || d.closed {
		return fmt.Errorf("dir %s: already committed or closed: %w", d.final, core.ErrInvalid)
	}
	if _, ok := d.manifests[m]; !ok {
		return fmt.Errorf("dir %s: signatures of %s: the manifest was not written: %w", d.final, m, core.ErrNotFound)
	}
	for i, sig := range sigs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := atomicfile.Write(filepath.Join(d.stage, signatureName(m, false, i+1)), sig); err != nil {
			return fmt.Errorf("dir %s: signatures of %s: %w", d.final, m, err)
		}
	}
	// Fewer than before: the rest go, so the numbering ends where it should.
	for n := len(sigs) + 1; n <= d.sigs[m]; n++ {
		if err := os.Remove(filepath.Join(d.stage, signatureName(m, false, n))); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("dir %s: %w", d.final, err)
		}
	}
	d.sigs[m] = len(sigs)
	return nil
}

// Close discards everything unless Commit succeeded.
func (d *dest) Close(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if !d.committed {
		err := os.RemoveAll(d.stage)
		d.held.Release()
		atomicfile.RemoveMadeDirs(d.made)
		return err
	}
	d.held.Release()
	return nil
}

// swapInto renames stage to final. An existing final directory (checked to
// be empty or an image directory at open) is exchanged with the new one in
// one step (renameat2 RENAME_EXCHANGE: final is never missing, even if the
// process dies there) and then removed. Where the filesystem cannot
// exchange, it is moved aside first and removed once the new one is in
// place.
func swapInto(stage, final string) error {
	if _, err := os.Lstat(final); errors.Is(err, os.ErrNotExist) {
		if err := os.Rename(stage, final); err != nil {
			return err
		}
		return atomicfile.SyncDir(filepath.Dir(final))
	}
	if err := replaceable(final); err != nil {
		return err
	}
	if err := exchange(stage, final); err == nil {
		if err := atomicfile.SyncDir(filepath.Dir(final)); err != nil {
			return err
		}
		return os.RemoveAll(stage) // the old directory now
	} else if !errors.Is(err, errNoExchange) {
		return err
	}
	// Not a staging directory's name: the sweep must never take the one
	// copy of the image, should the process die before the next rename.
	base := "." + filepath.Base(final)
	old := filepath.Join(filepath.Dir(final), base+".stevedore-old-"+strings.TrimPrefix(filepath.Base(stage), base+".stevedore-tmp-"))
	if err := os.Rename(final, old); err != nil {
		return err
	}
	if err := os.Rename(stage, final); err != nil {
		_ = os.Rename(old, final)
		return err
	}
	if err := atomicfile.SyncDir(filepath.Dir(final)); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// errNoExchange: the filesystem cannot swap two entries in one step.
var errNoExchange = errors.New("no atomic exchange")

// stagePrefix names files staged for the host to write (StageBlob).
const stagePrefix = atomicfile.TmpPrefix + "stage-"

// StageBlob implements pluginapi.BlobStager: an empty file in the staging
// directory, remembered until it is committed, aborted or the endpoint is
// committed or closed.
func (d *dest) StageBlob(ctx context.Context, desc ocispec.Descriptor) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if _, err := blobName(desc.Digest); err != nil {
		return "", fmt.Errorf("dir %s: %w", d.final, err)
	}
	if desc.Size < 0 {
		return "", fmt.Errorf("dir %s: blob %s: negative size %d: %w", d.final, desc.Digest, desc.Size, core.ErrInvalid)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.committed || d.closed {
		return "", fmt.Errorf("dir %s: already committed or closed: %w", d.final, core.ErrInvalid)
	}
	f, err := os.CreateTemp(d.stage, stagePrefix+"*")
	if err != nil {
		return "", fmt.Errorf("dir %s: blob %s: %w", d.final, desc.Digest, err)
	}
	p := f.Name()
	if err := f.Close(); err != nil {
		_ = os.Remove(p)
		return "", fmt.Errorf("dir %s: blob %s: %w", d.final, desc.Digest, err)
	}
	if d.staged == nil {
		d.staged = map[string]ocispec.Descriptor{}
	}
	d.staged[p] = desc
	return p, nil
}

// take forgets a path this endpoint staged, so that it is committed or
// aborted once; it refuses any other path.
func (d *dest) take(path string) (ocispec.Descriptor, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	desc, ok := d.staged[path]
	if !ok {
		return desc, fmt.Errorf("dir %s: %q was not staged by this endpoint, or is already committed or aborted: %w", d.final, path, core.ErrInvalid)
	}
	delete(d.staged, path)
	return desc, nil
}

// CommitStagedBlob implements pluginapi.BlobStager: the staged file becomes
// the blob's file in the staging directory once its size (and, unless the
// host hashed it as it wrote, its digest) is checked. On failure it is
// removed.
func (d *dest) CommitStagedBlob(ctx context.Context, desc ocispec.Descriptor, path string) (err error) {
	staged, err := d.take(path)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(path)
			err = fmt.Errorf("dir %s: staged blob %s: %w", d.final, desc.Digest, err)
		}
	}()
	if staged.Digest != desc.Digest || staged.Size != desc.Size {
		return fmt.Errorf("%q was staged for blob %s (%d bytes), not %d bytes: %w", path, staged.Digest, staged.Size, desc.Size, core.ErrInvalid)
	}
	name, err := blobName(desc.Digest)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("staged file is not a regular file: %w", core.ErrInvalid)
	}
	if fi.Size() != desc.Size {
		return &core.SizeMismatchError{Digest: desc.Digest, Expected: desc.Size, Actual: fi.Size()}
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if !pluginapi.HostVerified(ctx) {
		vr := content.NewVerifyReader(atomicfile.ContextReader(ctx, f), desc)
		if _, err := io.Copy(io.Discard, vr); err != nil {
			return err
		}
		if !vr.Verified() {
			return fmt.Errorf("staged file ended unverified: %w", core.ErrInvalid)
		}
	}
	if err := f.Chmod(atomicfile.FileMode()); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := os.Rename(path, filepath.Join(d.stage, name)); err != nil {
		return err
	}
	return atomicfile.SyncDir(d.stage)
}

// AbortStagedBlob implements pluginapi.BlobStager.
func (d *dest) AbortStagedBlob(_ context.Context, path string) error {
	if _, err := d.take(path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("dir %s: %w", d.final, err)
	}
	return nil
}

var _ pluginapi.Committer = (*dest)(nil)
var _ pluginapi.BlobStager = (*dest)(nil)
var _ pluginapi.Destination = (*dest)(nil)
var _ pluginapi.Source = (*source)(nil)
var _ pluginapi.BlobPather = (*source)(nil)
var _ pluginapi.SignatureLister = (*source)(nil)
var _ pluginapi.SignatureWriter = (*dest)(nil)
