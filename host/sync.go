package host

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stevedore-oci/stevedore/core"
	"github.com/stevedore-oci/stevedore/core/manifest"
	"github.com/stevedore-oci/stevedore/core/ref"
	"github.com/stevedore-oci/stevedore/pluginapi"
)

// SyncKind says what a SyncJob's source names.
type SyncKind string

const (
	// SyncImage copies one image: Source.Ref is a tag or a digest.
	SyncImage SyncKind = "image"
	// SyncRepository copies every tag of Source's location that the job's
	// Tags filter selects (all tags without one). Refs are ignored.
	SyncRepository SyncKind = "repository"
	// SyncPrefix mirrors every repository the source lists at or under its
	// location (a registry's catalog: the endpoint must advertise
	// list-repositories), each as a SyncRepository job whose target is
	// Target's location followed by the repository's path under Source's
	// ("reg/team" -> "mirror/team": "reg/team/api" -> "mirror/team/api").
	SyncPrefix SyncKind = "prefix"
)

// TagFilter selects the tags of a repository job. host/syncspec builds
// them from allow/deny regexes, semver constraints and "newest N".
type TagFilter interface {
	// Match reports whether a tag passes the filter's per-tag rules
	// (everything but rules relative to other tags, such as newest N).
	// Prune deletes destination tags that Match and the source lacks.
	Match(tag string) bool
	// Select returns the tags to copy out of a repository's tag list.
	Select(tags []string) []string
}

// SyncJob is one entry of a sync: an image, or a repository's tags, and
// where they go.
type SyncJob struct {
	// Name labels the job in reports (e.g. the YAML entry); optional.
	Name string
	Kind SyncKind
	// Source and Target are parsed endpoints. For SyncImage, Target.Ref ""
	// means the source's ref (a digest source is then stored untagged).
	Source, Target ref.Endpoint
	// Tags filters a repository's tags; nil selects them all.
	Tags TagFilter
	// Immutable reports tags that never change once published: such a tag
	// present at the destination is skipped without asking the source.
	Immutable func(tag string) bool
	// All, Platforms, PlatformsPickOnly: as in CopyOptions (an image that
	// is no index and names none of Platforms fails, as an index holding
	// none of them does). For a mirror the natural choice is All (every
	// platform, digests kept).
	All               bool
	Platforms         []ocispec.Platform
	PlatformsPickOnly bool
	// Referrers copies the referrers (signatures, SBOMs, attestations) of
	// every image synced whose digest the copy preserved.
	Referrers bool
	// SrcOptions and DstOptions are handed to the transports.
	SrcOptions, DstOptions map[string]string
	// Jobs bounds the blobs in flight for this job (0: SyncOptions.Jobs).
	Jobs int

	// listed: a repository job made from a catalog, whose source is known
	// to exist: a tag list answered "not found" is empty (distribution
	// says so of a repository holding no tag).
	listed bool
}

// SyncOptions tune Sync.
type SyncOptions struct {
	// Parallel bounds the images copied at once (default 4). Tags are
	// compared (a HEAD per side) 4 times as many at a time, and as many
	// jobs may have their endpoints open. An image found to differ keeps
	// its place among the comparisons until a copy slot is free: the
	// comparisons run that far ahead of the copies, no further.
	Parallel int
	// Jobs bounds the blobs in flight per job (default 4).
	Jobs int
	// DryRun resolves tags and digests and reports what would be copied
	// and pruned; it opens no destination for writing.
	DryRun bool
	// KeepGoing carries on after a failed image; otherwise the first
	// failure stops the run (images in flight are cancelled).
	KeepGoing bool
	// Prune deletes destination tags of repository jobs that their filter
	// matches and that the source no longer has.
	Prune bool
	// Retries is how many more times an image is tried after a failure
	// that may pass (core.ErrUnavailable: 429, 5xx, broken connections,
	// once the transport's own retries are spent). RetryDelay is the first
	// wait (default 1 s), doubled for each attempt.
	Retries    int
	RetryDelay time.Duration
	// Limits bound the requests per registry (keyed by registry name as
	// in references, e.g. "docker.io", "127.0.0.1:5000"); DefaultLimit
	// applies to registries not listed.
	Limits       map[string]RegistryLimit
	DefaultLimit RegistryLimit
	// Format and PreserveDigests are CopyOptions' for every image: a
	// destination refusing a manifest's type gets that job's images in the
	// other format (with one warning per job), unless PreserveDigests.
	Format          manifest.Format
	PreserveDigests bool
	// OnImage, if set, is called as each image (or pruned tag) is done,
	// one call at a time.
	OnImage func(SyncImageResult)
	// Progress, if set, receives blob events of every copy.
	Progress func(Event)
}

// SyncAction is what Sync did with one image.
type SyncAction string

// Sync actions.
const (
	ActionCopied     SyncAction = "copied"
	ActionSkipped    SyncAction = "skipped"     // Reason: up-to-date or immutable
	ActionWouldCopy  SyncAction = "would-copy"  // dry run
	ActionFailed     SyncAction = "failed"      // Error says why
	ActionCancelled  SyncAction = "cancelled"   // stopped by an earlier failure
	ActionPruned     SyncAction = "pruned"      // destination tag deleted
	ActionWouldPrune SyncAction = "would-prune" // dry run
)

// Reasons for ActionSkipped.
const (
	ReasonUpToDate  = "up-to-date"
	ReasonImmutable = "immutable"
)

// SyncImageResult reports one image of a sync.
type SyncImageResult struct {
	// Job is the index of the job in the list given to Sync; JobName its
	// Name.
	Job     int    `json:"job"`
	JobName string `json:"jobName,omitempty"`
	// Source and Target are endpoint strings (with the tag or digest).
	// For a failure to list a repository, they name the repositories.
	Source string     `json:"source"`
	Target string     `json:"target"`
	Action SyncAction `json:"action"`
	Reason string     `json:"reason,omitempty"`
	// SourceDigest is the source's top-level manifest or index;
	// TargetDigest what the destination holds (or would hold) after the
	// sync.
	SourceDigest digest.Digest `json:"sourceDigest,omitempty"`
	TargetDigest digest.Digest `json:"targetDigest,omitempty"`
	// Referrers counts the referrers copied along.
	Referrers int     `json:"referrers,omitempty"`
	Attempts  int     `json:"attempts,omitempty"`
	Error     string  `json:"error,omitempty"`
	Seconds   float64 `json:"seconds"`

	err error
}

// Err returns the error of a failed image.
func (r SyncImageResult) Err() error { return r.err }

// SyncReport summarises a sync run.
type SyncReport struct {
	DryRun    bool `json:"dryRun"`
	Copied    int  `json:"copied"`
	Skipped   int  `json:"skipped"`
	WouldCopy int  `json:"wouldCopy"`
	// WouldPrune counts the tags a dry run would prune.
	WouldPrune int `json:"wouldPrune"`
	Failed     int `json:"failed"`
	Cancelled  int `json:"cancelled"`
	Pruned     int `json:"pruned"`
	// Referrers copied in all.
	Referrers int `json:"referrers"`
	// Blob and byte counts over the run. A blob shared by several images
	// of a job is counted once.
	BlobsCopied  int   `json:"blobsCopied"`
	BlobsMounted int   `json:"blobsMounted"`
	BlobsSkipped int   `json:"blobsSkipped"`
	BytesSent    int64 `json:"bytesSent"`
	Manifests    int   `json:"manifests"`
	// Images lists every image and pruned tag, in job then tag order.
	Images  []SyncImageResult `json:"images"`
	Seconds float64           `json:"seconds"`
	// Duration is Seconds as a time.Duration.
	Duration time.Duration `json:"-"`
}

// SyncError is returned by Sync when images failed; the report has the
// details.
type SyncError struct {
	Failed int
	First  error
}

func (e *SyncError) Error() string {
	if e.Failed == 1 {
		return fmt.Sprintf("sync: 1 image failed: %v", e.First)
	}
	return fmt.Sprintf("sync: %d images failed; first: %v", e.Failed, e.First)
}

func (e *SyncError) Unwrap() error { return e.First }

// Sync mirrors the jobs' images. Per tag it asks the source and the
// destination for the manifest digest (a HEAD each on registries) and
// copies only when they differ; blobs the destination holds are never
// sent again, and a blob that one repository of the destination registry
// received is mounted into the others. It returns the report, and a
// *SyncError when any image failed (the report is complete either way,
// except for images a stopped run did not reach).
func (h *Host) Sync(ctx context.Context, jobs []SyncJob, opts SyncOptions) (*SyncReport, error) {
	start := time.Now()
	for i, j := range jobs {
		if err := checkJob(j); err != nil {
			return nil, fmt.Errorf("sync job %d (%s): %w", i, jobLabel(j), err)
		}
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	if opts.RetryDelay <= 0 {
		opts.RetryDelay = time.Second
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	s := &syncRun{
		h:        h,
		opts:     opts,
		parent:   ctx,
		stop:     stop,
		jobSem:   make(chan struct{}, opts.Parallel*checksPerCopy),
		imageSem: make(chan struct{}, opts.Parallel),
		checkSem: make(chan struct{}, opts.Parallel*checksPerCopy),
		share:    newBlobShare(),
		limiters: map[string]*limiter{},
		limits:   keyedLimits(opts.Limits),
		results:  make([][]SyncImageResult, len(jobs)),
		report:   &SyncReport{DryRun: opts.DryRun},
	}
	var wg sync.WaitGroup
	for i := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if jobs[i].Kind == SyncPrefix {
				s.runPrefix(runCtx, i, jobs[i])
				return
			}
			s.runSlotted(runCtx, i, jobs[i])
		}()
	}
	wg.Wait()
	rep := s.report
	var first error
	for _, rs := range s.results {
		sort.SliceStable(rs, func(a, b int) bool { return rs[a].Target < rs[b].Target })
		for _, r := range rs {
			rep.Images = append(rep.Images, r)
			switch r.Action {
			case ActionCopied:
				rep.Copied++
			case ActionSkipped:
				rep.Skipped++
			case ActionWouldCopy:
				rep.WouldCopy++
			case ActionFailed:
				rep.Failed++
				if first == nil {
					first = r.err
				}
			case ActionCancelled:
				rep.Cancelled++
			case ActionPruned:
				rep.Pruned++
			case ActionWouldPrune:
				rep.WouldPrune++
			}
			rep.Referrers += r.Referrers
		}
	}
	if rep.Images == nil {
		rep.Images = []SyncImageResult{}
	}
	rep.Duration = time.Since(start)
	rep.Seconds = rep.Duration.Seconds()
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	if rep.Failed > 0 {
		return rep, &SyncError{Failed: rep.Failed, First: first}
	}
	return rep, nil
}

func checkJob(j SyncJob) error {
	switch j.Kind {
	case SyncImage, SyncRepository, SyncPrefix:
	default:
		return fmt.Errorf("kind %q: want %s, %s or %s: %w", j.Kind, SyncImage, SyncRepository, SyncPrefix, core.ErrInvalid)
	}
	if j.Source.Transport == "" || j.Source.Location == "" || j.Target.Transport == "" || j.Target.Location == "" {
		return fmt.Errorf("source and target are required: %w", core.ErrInvalid)
	}
	if j.All && len(j.Platforms) > 0 {
		return fmt.Errorf("all and platforms exclude each other: %w", core.ErrInvalid)
	}
	return nil
}

func jobLabel(j SyncJob) string {
	if j.Name != "" {
		return j.Name
	}
	return j.Source.String() + " -> " + j.Target.String()
}

// syncRun is the state of one Sync call.
type syncRun struct {
	h        *Host
	opts     SyncOptions
	parent   context.Context
	stop     context.CancelFunc
	jobSem   chan struct{}
	imageSem chan struct{} // images being copied
	checkSem chan struct{} // tags being compared, or waiting for a copy slot
	share    *blobShare
	// referrers serializes the writing of one subject's referrers at one
	// destination (see syncReferrers).
	referrers keyedMutex[referrersKey]

	mu       sync.Mutex
	limiters map[string]*limiter
	limits   map[string]RegistryLimit // opts.Limits by registryKey
	results  [][]SyncImageResult
	report   *SyncReport
	emitMu   sync.Mutex
}

// limiterFor returns the shared limiter of ep's registry, or nil.
// keyedLimits re-keys per-registry limits by registryKey, so that a limit
// written for docker.io holds for registry-1.docker.io too.
func keyedLimits(m map[string]RegistryLimit) map[string]RegistryLimit {
	out := make(map[string]RegistryLimit, len(m))
	for name, l := range m {
		out[registryKey(name)] = l
	}
	return out
}

func (s *syncRun) limiterFor(ep ref.Endpoint) *limiter {
	reg := registryOf(ep)
	if reg == "" {
		return nil
	}
	l, ok := s.limits[reg]
	if !ok {
		l = s.opts.DefaultLimit
	}
	if l.zero() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	lim, ok := s.limiters[reg]
	if !ok {
		lim = newLimiter(l)
		s.limiters[reg] = lim
	}
	return lim
}

func (s *syncRun) open(ctx context.Context, ep ref.Endpoint, mode pluginapi.Mode, options map[string]string) (*endpoint, error) {
	e, err := s.h.open(ctx, ep, mode, options)
	if err != nil {
		return nil, err
	}
	return limited(e, s.limiterFor(ep)), nil
}

// record stores a result and reports it. A failure stops the run unless
// KeepGoing.
func (s *syncRun) record(job int, r SyncImageResult) {
	if r.err != nil && r.Error == "" {
		r.Error = oneLineErr(r.err)
	}
	s.mu.Lock()
	s.results[job] = append(s.results[job], r)
	s.mu.Unlock()
	if r.Action == ActionFailed && !s.opts.KeepGoing {
		s.stop()
	}
	if s.opts.OnImage != nil {
		s.emitMu.Lock()
		s.opts.OnImage(r)
		s.emitMu.Unlock()
	}
}

// failure classifies an error of an image: cancelled when an earlier
// failure stopped the run, failed otherwise.
func (s *syncRun) failure(r SyncImageResult, err error) SyncImageResult {
	r.err = err
	r.Action = ActionFailed
	if errors.Is(err, context.Canceled) && s.parent.Err() == nil {
		r.Action = ActionCancelled
		r.Reason = "an earlier image failed"
		r.err = nil
		r.Error = ""
	}
	return r
}

func oneLineErr(err error) string {
	b := []byte(err.Error())
	for i, c := range b {
		if c == '\n' || c == '\r' {
			b[i] = ' '
		}
	}
	return string(b)
}

// runSlotted runs a job once one of the job slots is free.
func (s *syncRun) runSlotted(ctx context.Context, index int, job SyncJob) {
	select {
	case s.jobSem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-s.jobSem }()
	s.runJob(ctx, index, job)
}

// runPrefix lists the repositories of a prefix job's source and runs one
// repository job for each, under the same job index. A listing that fails
// is one failed record naming the prefixes: nothing is read as empty, so
// prune never empties a mirror because a catalog could not be read.
func (s *syncRun) runPrefix(ctx context.Context, index int, job SyncJob) {
	srcEP, dstEP := job.Source.WithRef(""), job.Target.WithRef("")
	fail := func(err error) {
		r := SyncImageResult{Job: index, JobName: job.Name, Source: srcEP.String(), Target: dstEP.String(), Reason: "list source repositories"}
		s.record(index, s.failure(r, err))
	}
	locs, err := s.listRepositories(ctx, srcEP, job.SrcOptions)
	if err != nil {
		fail(err)
		return
	}
	// "oci:/media/mirror/" lists "/media/mirror/team/api".
	base := strings.TrimRight(srcEP.Location, "/")
	// A target inside the source prefix (docker://reg -> docker://reg/mirror)
	// is listed too: mirroring it again would nest a copy deeper each run.
	inTarget := func(loc string) bool {
		t := strings.TrimRight(dstEP.Location, "/")
		return dstEP.Transport == srcEP.Transport && (loc == t || strings.HasPrefix(loc, t+"/"))
	}
	var wg sync.WaitGroup
	for _, loc := range locs {
		if inTarget(loc) {
			continue
		}
		rel, ok := strings.CutPrefix(loc, base)
		if !ok || (rel != "" && !strings.HasPrefix(rel, "/")) {
			fail(fmt.Errorf("the transport listed %q, which is not under %q: %w", loc, srcEP.Location, core.ErrInvalid))
			continue
		}
		sub := job
		sub.Kind, sub.listed = SyncRepository, true
		sub.Source = ref.Endpoint{Transport: srcEP.Transport, Location: loc}
		sub.Target = dstEP.Under(rel)
		// The slot is taken before the goroutine starts: a catalog of
		// thousands of repositories makes as many goroutines as slots.
		select {
		case s.jobSem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-s.jobSem }()
			s.runJob(ctx, index, sub)
		}()
	}
	wg.Wait()
}

// listRepositories reads a prefix job's catalog.
func (s *syncRun) listRepositories(ctx context.Context, ep ref.Endpoint, options map[string]string) ([]string, error) {
	e, err := s.h.openFor(ctx, ep, pluginapi.ModeRead, options, pluginapi.CapListRepositories)
	if err != nil {
		return nil, err
	}
	e = limited(e, s.limiterFor(ep))
	defer e.Close(context.WithoutCancel(ctx))
	locs, err := e.Endpoint.(pluginapi.RepositoryLister).ListRepositories(ctx)
	if err != nil {
		return nil, e.wrap("list repositories of "+ep.String(), err)
	}
	return locs, nil
}

// jobState is what the images of one job share.
type jobState struct {
	index   int
	job     SyncJob
	src     *endpoint
	dst     *endpoint // nil in a dry run
	dstRead *endpoint // resolves what the destination holds; nil: empty
	copier  *copier
	// dstTags is the destination's tag list when it was read (immutable
	// tags, prune), nil otherwise.
	dstTags map[string]bool
	// pruned counts the tags the job deleted.
	pruned atomic.Int64
}

func (s *syncRun) runJob(ctx context.Context, index int, job SyncJob) {
	label := SyncImageResult{Job: index, JobName: job.Name, Source: job.Source.String(), Target: job.Target.String()}
	if job.Kind == SyncRepository {
		label.Source = job.Source.WithRef("").String()
		label.Target = job.Target.WithRef("").String()
	}
	fail := func(step string, err error) {
		r := label
		r.Reason = step
		s.record(index, s.failure(r, err))
	}
	srcEP := job.Source.WithRef("")
	dstEP := job.Target.WithRef("")
	// The target's plugin starts while the source's starts and opens; the
	// target is opened (maybe created) once the source is known good.
	started := s.h.prelaunch(ctx, dstEP.Transport)
	src, err := s.open(ctx, srcEP, pluginapi.ModeRead, job.SrcOptions)
	<-started
	if err != nil {
		fail("open source", err)
		return
	}
	defer src.Close(context.WithoutCancel(ctx))
	if job.Referrers && !src.has(pluginapi.CapReferrers) && s.h.logger != nil {
		s.h.logger.Warn(fmt.Sprintf("%s cannot list referrers: --referrers copies none from it", srcEP))
	}
	js := &jobState{index: index, job: job, src: src}
	if !s.opts.DryRun {
		dst, err := s.open(ctx, dstEP, pluginapi.ModeWrite, job.DstOptions)
		if err != nil {
			fail("open target", err)
			return
		}
		defer dst.Close(context.WithoutCancel(ctx))
		js.dst = dst
		if dst.has(pluginapi.CapSource) {
			js.dstRead = dst
		}
	}
	if js.dstRead == nil {
		// The destination endpoint cannot read back (an OCI layout opened
		// for writing): open it again to read. A destination that does not
		// exist yet holds nothing.
		rd, err := s.open(ctx, dstEP, pluginapi.ModeRead, job.DstOptions)
		switch {
		case err == nil:
			defer rd.Close(context.WithoutCancel(ctx))
			js.dstRead = rd
		case errors.Is(err, core.ErrNotFound):
		case errors.Is(err, core.ErrUnsupported):
			// A write-only transport (archives): copy every time.
		default:
			fail("open target for reading", err)
			return
		}
	}
	jobs := job.Jobs
	if jobs <= 0 {
		jobs = s.opts.Jobs
	}
	copts := CopyOptions{All: job.All, Platforms: job.Platforms, PlatformsPickOnly: job.PlatformsPickOnly, Jobs: jobs, SrcOptions: job.SrcOptions, DstOptions: job.DstOptions, Progress: s.opts.Progress,
		Format: s.opts.Format, PreserveDigests: s.opts.PreserveDigests}
	js.copier = newCopier(src, js.dst, copts)
	js.copier.logger = s.h.logger
	js.copier.share = s.share
	js.copier.commitLater = true
	js.copier.subsetPlatforms = true
	defer s.addStats(js.copier)

	// The target's tags, when needed, are listed while the source's are.
	needDstTags := (job.Immutable != nil && job.Kind == SyncRepository) || (s.opts.Prune && job.Kind == SyncRepository)
	var dstTagsErr error
	dstTagsDone := make(chan struct{})
	switch {
	case needDstTags && js.dstRead != nil && js.dstRead.has(pluginapi.CapListTags):
		go func() {
			defer close(dstTagsDone)
			tags, err := s.listTags(ctx, js.dstRead)
			if errors.Is(err, core.ErrNotFound) {
				// A target repository yet to be written to.
				tags, err = nil, nil
			}
			if err == nil {
				js.dstTags = make(map[string]bool, len(tags))
				for _, t := range tags {
					js.dstTags[t] = true
				}
			}
			dstTagsErr = err
		}()
	case needDstTags && js.dstRead == nil:
		js.dstTags = map[string]bool{}
		close(dstTagsDone)
	default:
		close(dstTagsDone)
	}
	// Returning early, wait for the listing: it writes js.
	defer func() { <-dstTagsDone }()

	// What to copy: (source ref, destination ref) pairs.
	type pair struct{ src, dst string }
	var pairs []pair
	var srcTags map[string]bool
	switch job.Kind {
	case SyncImage:
		dref := job.Target.Ref
		if dref == "" {
			if dref, err = targetRef(job, job.Source.Ref); err != nil {
				fail("plan", err)
				return
			}
		}
		pairs = append(pairs, pair{job.Source.Ref, dref})
	case SyncRepository:
		if !src.has(pluginapi.CapListTags) {
			fail("list tags", fmt.Errorf("transport %s cannot list tags; name images one by one: %w", srcEP.Transport, core.ErrUnsupported))
			return
		}
		tags, err := s.listTags(ctx, src)
		if errors.Is(err, core.ErrNotFound) && job.listed {
			tags, err = nil, nil
		}
		if err != nil {
			fail("list source tags", err)
			return
		}
		srcTags = make(map[string]bool, len(tags))
		for _, t := range tags {
			srcTags[t] = true
		}
		sel := tags
		if job.Referrers {
			// Tags of the referrers tag schema ("sha256-<hex>") are
			// indexes the destination maintains itself as referrers are
			// copied: mirroring them as tags would fight over them.
			sel = nil
			for _, t := range tags {
				if !referrersTagRE().MatchString(t) {
					sel = append(sel, t)
				}
			}
		}
		if job.Tags != nil {
			sel = job.Tags.Select(sel)
		}
		sort.Strings(sel)
		for _, t := range sel {
			d, err := targetRef(job, t)
			if err != nil {
				fail("plan", err)
				return
			}
			pairs = append(pairs, pair{t, d})
		}
		if job.Target.Transport == ref.Dir && len(pairs) > 1 {
			fail("plan", fmt.Errorf("a dir: target holds one image and %s has %d tags to copy: name one (an image job), or sync to oci: or oci-archive: instead: %w", srcEP, len(pairs), core.ErrInvalid))
			return
		}
	}
	<-dstTagsDone
	if dstTagsErr != nil {
		fail("list target tags", dstTagsErr)
		return
	}
	var wg sync.WaitGroup
	for _, p := range pairs {
		select {
		case s.checkSem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			slot := &imageSlot{s: s, check: true}
			defer slot.release()
			s.record(index, s.syncImage(ctx, js, slot, p.src, p.dst))
		}()
	}
	wg.Wait()

	if s.opts.Prune && job.Kind == SyncRepository && ctx.Err() == nil {
		s.prune(ctx, js, srcTags, label)
	}
	// A target written at the end (an archive, a dir:, a static tree)
	// takes the job's images and prunes at once; an interrupted job
	// leaves it as it was, and one that wrote nothing leaves it alone (an
	// archive would be rewritten whole).
	wrote := js.copier.stats.manifests.Load() > 0 || js.pruned.Load() > 0
	if js.dst != nil && js.dst.has(pluginapi.CapCommit) && wrote && ctx.Err() == nil {
		if err := js.dst.Endpoint.(pluginapi.Committer).Commit(ctx); err != nil {
			fail("commit target", js.dst.wrap("commit", err))
		}
	}
}

// targetRef is the reference in job's target of the source's tag (or
// digest) t. A docker-archive names each image NAME:TAG: the repository the
// target names, else the source's (a registry's); the tag alone would read
// as a name.
func targetRef(job SyncJob, t string) (string, error) {
	if job.Target.Transport != ref.DockerArchive {
		return t, nil
	}
	name := job.Target.Ref
	if name == "" && job.Source.Transport == ref.Docker {
		name = job.Source.Location
	}
	if name == "" {
		return "", fmt.Errorf("docker-archive: names each image NAME:TAG and %s has no repository name: name one in the target (docker-archive:FILE:NAME): %w", job.Source.WithRef(""), core.ErrInvalid)
	}
	if t == "" || ref.IsDigest(t) {
		return name, nil
	}
	return name + ":" + t, nil
}

func (s *syncRun) listTags(ctx context.Context, e *endpoint) ([]string, error) {
	tags, err := e.Endpoint.(pluginapi.TagLister).ListTags(ctx)
	if err != nil {
		step := "list tags of " + e.ep.String()
		if strings.Contains(err.Error(), "list tags") {
			// The transport named the step and the repository (docker:
			// "registry R, repository X: list tags: ..."): not twice.
			step = ""
		}
		return nil, e.wrap(step, err)
	}
	return tags, nil
}

func (s *syncRun) addStats(c *copier) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.report.BlobsCopied += int(c.stats.copied.Load())
	s.report.BlobsMounted += int(c.stats.mounted.Load())
	s.report.BlobsSkipped += int(c.stats.skipped.Load())
	s.report.Manifests += int(c.stats.manifests.Load())
	s.report.BytesSent += c.bytes.Load()
	if n := c.stats.sigsDropped.Load(); n > 0 {
		s.h.logger.Warn(droppedWarning(int(n), c.src.ep, c.dst.ep))
	}
}

// checksPerCopy: comparing a tag costs a HEAD per side, copying an image
// far more; unchanged runs go faster with more comparisons in flight.
const checksPerCopy = 4

// imageSlot is what an image holds of the run's concurrency: a check slot
// while it compares digests, a copy slot while it copies.
type imageSlot struct {
	s           *syncRun
	check, copy bool
}

// toCopy trades the check slot for a copy slot. The check slot is given
// back once the copy slot is taken, not before: an image waiting for a copy
// still counts among the tags being compared, so that the comparisons run
// at most Parallel*checksPerCopy images ahead of the copies. (Given back
// first, a mirror's every tag was compared while its first images copied,
// and each waited in a goroutine of its own: some 20 KiB of stack per image,
// 30 MiB of the host's RSS at 2000 images.)
func (sl *imageSlot) toCopy(ctx context.Context) error {
	if sl.copy {
		return nil
	}
	select {
	case sl.s.imageSem <- struct{}{}:
		sl.copy = true
	case <-ctx.Done():
		return ctx.Err()
	}
	if sl.check {
		<-sl.s.checkSem
		sl.check = false
	}
	return nil
}

func (sl *imageSlot) release() {
	if sl.check {
		<-sl.s.checkSem
		sl.check = false
	}
	if sl.copy {
		<-sl.s.imageSem
		sl.copy = false
	}
}

// syncImage brings one image up to date, with retries.
func (s *syncRun) syncImage(ctx context.Context, js *jobState, slot *imageSlot, srcRef, dstRef string) SyncImageResult {
	start := time.Now()
	r := SyncImageResult{
		Job:     js.index,
		JobName: js.job.Name,
		Source:  js.job.Source.WithRef(srcRef).String(),
		Target:  js.job.Target.WithRef(dstRef).String(),
	}
	delay := s.opts.RetryDelay
	for attempt := 1; ; attempt++ {
		r.Attempts = attempt
		out, err := s.syncOnce(ctx, js, slot, r, srcRef, dstRef)
		out.Seconds = time.Since(start).Seconds()
		if err == nil {
			return out
		}
		if attempt > s.opts.Retries || !errors.Is(err, core.ErrUnavailable) || ctx.Err() != nil {
			return s.failure(out, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return s.failure(out, err)
		case <-t.C:
		}
		delay *= 2
	}
}

func (s *syncRun) syncOnce(ctx context.Context, js *jobState, slot *imageSlot, r SyncImageResult, srcRef, dstRef string) (SyncImageResult, error) {
	tag := dstRef
	if ref.IsDigest(tag) {
		tag = ""
	}
	immutable := tag != "" && js.job.Immutable != nil && js.job.Immutable(tag)
	if immutable && js.dstTags != nil {
		if js.dstTags[tag] {
			r.Action, r.Reason = ActionSkipped, ReasonImmutable
			return r, nil
		}
	}

	// Ask both sides at once: a HEAD each on registries.
	var (
		srcDesc, dstDesc ocispec.Descriptor
		srcErr, dstErr   error
		dstKnown         bool // dstDesc is what the destination holds
		wg               sync.WaitGroup
	)
	resolveDst := func() {
		if js.dstRead == nil || (js.dstTags != nil && tag != "" && !js.dstTags[tag]) {
			return // nothing there
		}
		d, err := js.dstRead.Resolve(ctx, dstRef)
		switch {
		case err == nil:
			dstDesc, dstKnown = d, true
		case errors.Is(err, core.ErrNotFound):
		default:
			dstErr = js.dstRead.wrap("resolve "+quote(dstRef)+" at the target", err)
		}
	}
	if immutable {
		// Tags were not listed: one HEAD at the destination decides.
		resolveDst()
		if dstErr == nil && dstKnown {
			r.Action, r.Reason, r.TargetDigest = ActionSkipped, ReasonImmutable, dstDesc.Digest
			return r, nil
		}
	} else {
		wg.Add(1)
		go func() { defer wg.Done(); resolveDst() }()
	}
	srcDesc, srcErr = js.src.Resolve(ctx, srcRef)
	wg.Wait()
	if srcErr != nil {
		return r, js.src.wrap("resolve "+quote(srcRef), srcErr)
	}
	r.SourceDigest = srcDesc.Digest
	if errors.Is(dstErr, core.ErrUnavailable) {
		return r, dstErr // worth a retry
	}
	if dstErr != nil && s.opts.DryRun {
		// No copy follows to report the cause: a dry run that cannot
		// read the destination (refused credentials) does not know
		// whether the image is there, and must not say it would copy.
		return r, dstErr
	}
	// Any other failure to read the destination counts as "not there":
	// the copy reports the real cause if it cannot write either.

	// What the destination will hold: the source's digest, unless a
	// platform selection rewrites an index, or the manifests are written
	// in another format.
	want, err := s.wanted(ctx, js, srcDesc, dstDesc, dstKnown)
	if err != nil {
		return r, err
	}
	r.TargetDigest = want.Digest

	switch {
	case dstKnown && dstDesc.Digest == want.Digest:
		r.Action, r.Reason = ActionSkipped, ReasonUpToDate
	case s.opts.DryRun:
		// The copy refuses an image of one platform that is none of
		// those asked for: so does the dry run (it reads the config).
		c := js.copier
		if c.checksImagePlatform(js.job.All) && !manifest.IsIndex(srcDesc.MediaType) {
			m, err := c.fetchManifest(ctx, srcDesc)
			if err != nil {
				return r, err
			}
			if err := c.checkPlatform(ctx, m); err != nil {
				return r, err
			}
		}
		r.Action = ActionWouldCopy
	default:
		if err := slot.toCopy(ctx); err != nil {
			return r, err
		}
		res, err := js.copier.copyConverting(ctx, srcDesc, dstRef, js.job.All, "")
		if err != nil {
			return r, err
		}
		r.Action = ActionCopied
		r.TargetDigest = res.Descriptor.Digest
	}
	// Referrers name their subject by digest: only an image whose digest
	// the destination keeps has them copied.
	if js.job.Referrers && r.TargetDigest == srcDesc.Digest && js.src.has(pluginapi.CapReferrers) {
		n, err := s.syncReferrers(ctx, js, srcDesc.Digest, 0, map[digest.Digest]bool{})
		r.Referrers = n
		if err != nil {
			return r, fmt.Errorf("referrers of %s: %w", srcDesc.Digest, err)
		}
	}
	return r, nil
}

// wanted returns the descriptor the destination is to hold for srcDesc:
// srcDesc, unless a platform selection makes a smaller index or the job
// writes manifests in another format (asked for, or learned from a refusal
// earlier in the run). A destination holding the image in the format other
// than the source's, as a refusal makes a run write it, is up to date when
// it holds exactly what converting the source gives.
func (s *syncRun) wanted(ctx context.Context, js *jobState, srcDesc, dstDesc ocispec.Descriptor, dstKnown bool) (ocispec.Descriptor, error) {
	c := js.copier
	var top *manifest.Manifest
	want := srcDesc
	if manifest.IsIndex(srcDesc.MediaType) && !js.job.All {
		m, err := c.fetchManifest(ctx, srcDesc)
		if err != nil {
			return want, err
		}
		if top, err = c.selectPlatforms(ctx, m); err != nil {
			return want, err
		}
		want = top.Descriptor()
	}
	f, asked := c.startFormat(), true
	if f == "" && dstKnown && dstDesc.Digest != want.Digest && !c.opts.PreserveDigests {
		if df := manifest.FormatOf(dstDesc.MediaType); df != "" && df != manifest.FormatOf(want.MediaType) {
			f, asked = df, false
		}
	}
	if f == "" || !needsConversion(withFormat(ctx, f), want.MediaType) {
		return want, nil
	}
	if top == nil {
		m, err := c.fetchManifest(ctx, srcDesc)
		if err != nil {
			return want, err
		}
		top = m
	}
	if !asked {
		// Only an image the destination holds converted is up to date.
		if conv, err := c.planned(ctx, top, f); err == nil && conv.Digest == dstDesc.Digest {
			return conv.Descriptor(), nil
		}
		return want, nil
	}
	// The format is the job's: an image that cannot take it (or whose
	// digest would change under PreserveDigests) fails, whatever the
	// destination holds.
	conv, err := c.plan(withManifestCache(withFormat(ctx, f)), top)
	if err != nil {
		return want, err
	}
	return conv.Descriptor(), nil
}

// referrersTagRE matches the tags of the distribution-spec's referrers tag
// schema.
// referrersTagRE is compiled on first use: most runs never need it.
var referrersTagRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(sha256-[0-9a-f]{64}|sha512-[0-9a-f]{128})$`)
})

// maxReferrerDepth bounds referrers of referrers (a signature of an SBOM).
const maxReferrerDepth = 3

// syncReferrers copies the referrers of subject the destination lacks, and
// theirs. It returns how many were copied (or would be, in a dry run).
//
// Tags naming one image are synced in parallel and each asks for the
// image's referrers: the referrers of a subject are checked and written at
// a destination by one of them at a time, so that the others find them
// there instead of writing them again. A manifest written again while the
// registry checks it, as it does the entries of the referrers tag index
// that oras-go pushes after each referrer, can be unknown for that moment
// (docker-registry 2.x rewrites the file naming it in place and answers
// MANIFEST_BLOB_UNKNOWN), and two writers of one referrers tag index would
// each drop the other's entries.
func (s *syncRun) syncReferrers(ctx context.Context, js *jobState, subject digest.Digest, depth int, seen map[digest.Digest]bool) (int, error) {
	if depth >= maxReferrerDepth {
		return 0, nil
	}
	refs, err := js.src.Endpoint.(pluginapi.ReferrerLister).Referrers(ctx, subject, "")
	if err != nil {
		if errors.Is(err, core.ErrUnsupported) {
			return 0, nil
		}
		return 0, js.src.wrap("list referrers", err)
	}
	var next []digest.Digest
	for _, d := range refs {
		if !seen[d.Digest] {
			seen[d.Digest] = true
			next = append(next, d.Digest)
		}
	}
	n, err := s.copyReferrers(ctx, js, subject, refs, next)
	if err != nil {
		return n, err
	}
	for _, d := range next {
		m, err := s.syncReferrers(ctx, js, d, depth+1, seen)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// copyReferrers copies the referrers of subject among refs whose digest is
// in todo and the destination lacks, holding the subject's lock at the
// destination.
func (s *syncRun) copyReferrers(ctx context.Context, js *jobState, subject digest.Digest, refs []ocispec.Descriptor, todo []digest.Digest) (int, error) {
	if len(todo) == 0 {
		return 0, nil
	}
	if !s.opts.DryRun {
		unlock, err := s.referrers.lock(ctx, referrersKey{js.job.Target.Transport, js.job.Target.Location, subject})
		if err != nil {
			return 0, err
		}
		defer unlock()
	}
	want := make(map[digest.Digest]bool, len(todo))
	for _, d := range todo {
		want[d] = true
	}
	// One listing of the subject's referrers at the destination, where it
	// can list them, rather than a HEAD per referrer: and a referrer the
	// destination holds but does not list (an entry of a referrers tag
	// index that another client's update dropped) is written again, which
	// lists it again.
	listed, canList := s.dstReferrers(ctx, js, subject)
	n := 0
	for _, d := range refs {
		if !want[d.Digest] {
			continue
		}
		delete(want, d.Digest) // listed twice: once
		if canList {
			if listed[d.Digest] {
				continue
			}
		} else if js.dstRead != nil {
			if _, err := js.dstRead.Resolve(ctx, d.Digest.String()); err == nil {
				continue
			}
		}
		if !s.opts.DryRun {
			if _, err := js.copier.copyResolved(ctx, plainDesc(d), d.Digest.String(), true, ""); err != nil {
				return n, err
			}
		}
		n++
	}
	return n, nil
}

// dstReferrers lists the referrers of subject the destination lists, and
// whether it could (false: ask for each referrer by digest instead).
func (s *syncRun) dstReferrers(ctx context.Context, js *jobState, subject digest.Digest) (map[digest.Digest]bool, bool) {
	if js.dstRead == nil || !js.dstRead.has(pluginapi.CapReferrers) {
		return nil, false
	}
	rl, ok := js.dstRead.Endpoint.(pluginapi.ReferrerLister)
	if !ok {
		return nil, false
	}
	l, err := rl.Referrers(ctx, subject, "")
	if err != nil {
		return nil, false
	}
	listed := make(map[digest.Digest]bool, len(l))
	for _, d := range l {
		listed[d.Digest] = true
	}
	return listed, true
}

// referrersKey names a subject at a destination.
type referrersKey struct {
	transport, location string
	subject             digest.Digest
}

// keyedMutex is a mutex per key, taken under a context. Keys no one holds
// or waits for take no memory.
type keyedMutex[K comparable] struct {
	mu sync.Mutex
	m  map[K]*keyedLock
}

type keyedLock struct {
	held  chan struct{} // one token: the holder's
	users int           // holder and waiters
}

// lock takes key's mutex, or fails when ctx ends first; unlock gives it
// back.
func (k *keyedMutex[K]) lock(ctx context.Context, key K) (unlock func(), err error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[K]*keyedLock{}
	}
	l := k.m[key]
	if l == nil {
		l = &keyedLock{held: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.users++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.held <- struct{}{}:
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-l.held
			release()
		})
	}, nil
}

// prune deletes the destination tags the job's filter matches that the
// source no longer has.
func (s *syncRun) prune(ctx context.Context, js *jobState, srcTags map[string]bool, label SyncImageResult) {
	if srcTags == nil {
		return
	}
	if js.dstTags == nil {
		return // the destination cannot list tags, or does not exist
	}
	var gone []string
	for t := range js.dstTags {
		if srcTags[t] {
			continue
		}
		if js.job.Tags != nil && !js.job.Tags.Match(t) {
			continue
		}
		if js.job.Referrers && referrersTagRE().MatchString(t) {
			continue // the destination's own referrers index
		}
		gone = append(gone, t)
	}
	sort.Strings(gone)
	for _, t := range gone {
		r := label
		r.Source = ""
		r.Target = js.job.Target.WithRef(t).String()
		start := time.Now()
		if s.opts.DryRun {
			r.Action = ActionWouldPrune
			s.record(js.index, r)
			continue
		}
		if js.dst == nil || !js.dst.has(pluginapi.CapDelete) {
			r = s.failure(r, fmt.Errorf("prune %s: transport %s cannot delete: %w", r.Target, js.job.Target.Transport, core.ErrUnsupported))
			s.record(js.index, r)
			return
		}
		err := js.dst.Endpoint.(pluginapi.Deleter).Delete(ctx, t) // committed with the job
		r.Seconds = time.Since(start).Seconds()
		if err != nil {
			r.Reason = "prune"
			s.record(js.index, s.failure(r, js.dst.wrap("delete "+t, err)))
			continue
		}
		r.Action = ActionPruned
		js.pruned.Add(1)
		s.record(js.index, r)
	}
}
