package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/build/chain"
	"github.com/stratabuild/strata/build/plan"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/stateroot"
	"github.com/stratabuild/strata/internal/units"
)

// executor carries out the plan of one platform: the stages as a DAG,
// each step looked up in the cache and, on a miss, run — or, in a dry run,
// only reported. The executors of a multi-platform build share a session.
type executor struct {
	*session
	plan  *plan.Plan
	label string     // the platform, in a multi-platform build
	index int        // of the platform, in the order given
	epoch *time.Time // the plan's; nil for wall-clock times
	done  map[int]*stageDone
}

// session is what the platforms of one build share.
type session struct {
	o       Options
	context string // the build context dir
	root    *stateroot.Root
	ws      *chain.Workspace
	cache   *cache.Cache
	runner  Runner
	emit    func(Event)
	log     *slog.Logger
	args    map[string]string       // the recipe's args, to explain misses
	history string                  // the recipe's name in history: relative to the context
	cancel  context.CancelCauseFunc // stops the whole build

	shared *sharedStages // stages built once for every platform
	// images are the layer chains of the images stages start from or
	// copy from, one per image: two stages on one base share its
	// layers, so each blob is fetched and unpacked once.
	imagesMu  sync.Mutex
	images    map[string][]*chain.Layer
	platforms []v1.Platform // of the targets, in the order given
	// compressor compresses the layers steps made in the background,
	// and records them in the cache once they are whole; uploader
	// uploads them to a push's repositories as they are compressed (nil:
	// no push).
	compressor *commit.Compressor
	uploader   *commit.Uploader
	// imageStages are the fingerprints of the stages whose layers a push
	// uploads (see imageStages).
	imageStages map[string]bool

	// learn is set when no step looks its key up in the cache
	// (--no-cache, or a cache that cannot hit, as on a fresh state root):
	// nothing then needs a layer's diffID before the layer is
	// compressed. A step's upper dir is only trimmed when its process
	// exits, and the next step starts on it (chain.Workspace.Trim); the
	// diffID is learned as the layer is compressed, and the step's key
	// made then, in the background.
	learn bool

	mu    sync.Mutex // guards steps, dry, final, reencoded and trimmed
	steps []StepResult
	dry   []PlanStep
	// reencoded are the records of the layers re-encoded for the
	// outputs, by the digest the steps' records give (see encode).
	reencoded map[string]*cache.Layer
	// final are the records of the layers compressed, by the record the
	// step reported when it finished (no digest or size yet).
	final map[*cache.Layer]compressed
	// trimmed are the layers of Trim, their snapshots stored once the
	// build's steps are done (publishReady, publish); stepsDone says
	// they are. published guards the stores: a layer's Tar holds it
	// shared, as it reads the dirs of the layers below.
	trimmed   []trimmed
	stepsDone atomic.Bool
	published sync.RWMutex
}

// trimmed is a layer of Trim and its compression.
type trimmed struct {
	made *chain.Made
	blob *commit.Pending
}

// stageResult is a built stage: the root image it started from, its
// filesystem as a chain of layers, and the history of its steps.
type stageResult struct {
	base    v1.Image
	chain   []*chain.Layer // bottom first
	history []commit.Step
}

// chainOf is the layer chain of img, the same layers for every stage that
// asks (origin names the image for the first one's messages).
func (s *session) chainOf(img v1.Image, origin string) ([]*chain.Layer, error) {
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	s.imagesMu.Lock()
	defer s.imagesMu.Unlock()
	c, ok := s.images[d.String()]
	if !ok {
		if c, err = chain.Of(img, origin); err != nil {
			return nil, err
		}
		if s.images == nil {
			s.images = map[string][]*chain.Layer{}
		}
		s.images[d.String()] = c
	}
	return slices.Clone(c), nil
}

// runStage builds one stage on its base (an image, or a built stage).
func (e *executor) runStage(ctx context.Context, sp *plan.Stage) (*stageResult, error) {
	res := &stageResult{base: sp.Base}
	if sp.Base == nil {
		prev, err := e.waitStage(ctx, sp.BaseStage)
		if err != nil {
			return nil, err
		}
		res.base = prev.base
		res.chain = append(res.chain, prev.chain...)
		res.history = append(res.history, prev.history...)
	} else {
		c, err := e.chainOf(sp.Base, "base "+sp.Recipe.From.Ref)
		if err != nil {
			return nil, fmt.Errorf("%s: base %s: %w", sp.Recipe.From.Pos, sp.Recipe.From.Ref, err)
		}
		res.chain = c
	}
	for _, s := range sp.Steps {
		if err := e.step(ctx, sp, res, s); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// step carries out one step and records its history entry.
func (e *executor) step(ctx context.Context, sp *plan.Stage, res *stageResult, s *plan.Step) error {
	ev := Event{Stage: e.stageLabel(sp), Step: s.Recipe.Index + 1, Steps: len(sp.Steps), Pos: s.Pos, Action: s.Recipe.Kind.String(), Text: s.Text}
	start := time.Now()
	var layer v1.Layer
	var rec *cache.Layer
	var timings *Timings
	cached := false
	if s.Recipe.ChangesFiles() {
		e.event(ev, EventStart)
		var err error
		timings = &Timings{}
		if layer, rec, cached, err = e.fsStep(ctx, sp, res, s, ev, timings); err != nil {
			ev.Duration, ev.Error = time.Since(start), err.Error()
			kind := EventFailed
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				kind = EventCanceled
			}
			e.event(ev, kind)
			return err
		}
	}
	if cached {
		timings = nil
	}
	ev.Duration, ev.Layer, ev.Cached, ev.Timings = time.Since(start), rec, cached, timings
	e.event(ev, EventDone)
	res.history = append(res.history, commit.Step{Layer: layer, Comment: s.Recipe.Name,
		CreatedBy: fmt.Sprintf("strata %s %s: %s", e.history, s.Recipe.Kind, s.Recipe.Summary())}) // no line: a comment moves it
	e.mu.Lock()
	defer e.mu.Unlock()
	e.steps = append(e.steps, StepResult{Stage: ev.Stage, Pos: ev.Pos, Action: ev.Action, Cached: cached, Duration: ev.Duration, Layer: rec, Timings: timings})
	return nil
}

// event emits ev as kind; a dry run emits no step events (its plan is
// its output).
func (e *executor) event(ev Event, kind EventKind) {
	if e.o.DryRun {
		return
	}
	ev.Kind, ev.Time = kind, time.Now()
	e.emit(ev)
}

// fsStep finds a run or copy step's result in the cache or makes it. It
// returns the step's layer (nil if it changed no file), its record, and
// whether it came from the cache. In a dry run a miss is only reported,
// and what the stage holds after it is unknown.
func (e *executor) fsStep(ctx context.Context, sp *plan.Stage, res *stageResult, s *plan.Step, ev Event, t *Timings) (v1.Layer, *cache.Layer, bool, error) {
	row := PlanStep{Stage: e.stageLabel(sp), Pos: s.Pos, Action: ev.Action, Text: s.Text, Will: "run",
		order: [4]int{slices.IndexFunc(e.platforms, sp.Platform.Equals), sp.Recipe.Index, s.Recipe.Index, e.index}}
	parent := slices.Clip(res.chain) // the layers below the step
	var in *cache.Inputs
	why := "--no-cache"
	switch {
	case e.learn && !e.o.NoCache:
		why = cache.Explain(nil, nil) // the cache is empty
	case !e.learn:
		if s.From != nil && s.From.Stage >= 0 {
			// The key holds the source stage's diffIDs: the lookup
			// waits for it, said so.
			if err := e.awaitStage(ctx, s.From.Stage, ev, s.Recipe.Copy.From.Ref); err != nil {
				return nil, nil, false, err
			}
		}
		var err error
		if in, why, err = e.inputs(ctx, sp, parent, s); err != nil {
			return nil, nil, false, err
		}
		if in != nil && !e.o.NoCache {
			h, err := e.cache.Lookup(ctx, in.Key())
			if err != nil {
				return nil, nil, false, err
			}
			if h != nil {
				return e.hit(ctx, res, h, row, ev)
			}
			why = e.cache.Explain(in)
		}
	}
	if e.o.DryRun {
		row.Why = why
		e.record(row)
		res.chain = append(res.chain, &chain.Layer{}) // unknown from here on
		return nil, nil, false, nil
	}
	e.info(ev, "cache miss: "+why)
	mt, err := e.o.Compression.MediaType()
	if err != nil {
		return nil, nil, false, err
	}
	m, err := e.make(ctx, sp, res, s, ev, t)
	if err != nil {
		return nil, nil, false, err
	}
	// The next step starts now; the layer is compressed in the
	// background, and the step recorded in the cache once its blob is
	// whole (a build killed before never records it). A build that learns
	// diffIDs (see session.learn) makes the step's key only then, from
	// the diffIDs of the layers below it, compressed before it.
	now := time.Now()
	entry := &cache.Entry{Created: now, LastUsed: now}
	key := func(ctx context.Context) error {
		if in == nil {
			got, why, err := e.inputs(ctx, sp, parent, s)
			if err == nil && got == nil {
				err = errors.New(why)
			}
			if err != nil {
				return fmt.Errorf("%s: the step's cache key: %w", s.Pos, err)
			}
			in = got
		}
		entry.Key, entry.Inputs = in.Key(), *in
		return nil
	}
	if m.DiffID == "" && !m.Trimmed() { // the step changed no file
		record := func(ctx context.Context) error {
			if err := key(ctx); err != nil {
				return err
			}
			if err := e.cache.Record(ctx, entry, nil); err != nil {
				return fmt.Errorf("%s: recording the step in the cache: %w", s.Pos, err)
			}
			return nil
		}
		if e.learn {
			e.compressor.Then(record)
			return nil, nil, false, nil
		}
		return nil, nil, false, record(ctx)
	}
	var diffID v1.Hash // zero: learned
	if m.DiffID != "" {
		if diffID, err = v1.NewHash(m.DiffID); err != nil {
			return nil, nil, false, err
		}
	}
	rec := &cache.Layer{DiffID: m.DiffID, MediaType: string(mt), Added: m.Stats.Added, Modified: m.Stats.Modified, Deleted: m.Stats.Deleted}
	record := e.recorder(entry, rec, s.Pos, ev.Stage)
	tar := func(ctx context.Context, w io.Writer) error {
		e.published.RLock()
		defer e.published.RUnlock()
		return m.Tar(ctx, w)
	}
	layer := e.compressor.Add("the layer of "+s.Pos, diffID, tar, func(ctx context.Context, l *commit.Layer, took time.Duration) error {
		if err := key(ctx); err != nil {
			return err
		}
		if err := record(ctx, l, took); err != nil {
			return err
		}
		if e.learn {
			e.publishReady(m, l)
		}
		return nil
	})
	if e.imageStages[e.plan.Fingerprint(sp)] {
		e.uploader.Add(layer) // as it is compressed
	}
	res.chain = append(res.chain, m.Layer(layer))
	if m.Trimmed() {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.trimmed = append(e.trimmed, trimmed{m, layer})
	}
	return layer, rec, false, nil
}

// publishReady stores the snapshots of the trimmed layers compressed so
// far (see chain.Made.Publish), once the build's steps are done: the
// compressor calls it when a layer (self, whose blob is blob) is
// compressed. It does nothing while a later layer's Tar runs, so that no
// Tar reads a dir as it moves; a later call, or publish, stores them.
// With two layers compressed at once, the next layer's Tar has mostly
// started by then, and the last layer's call stores them.
func (s *session) publishReady(self *chain.Made, blob *commit.Layer) {
	if !s.stepsDone.Load() {
		return
	}
	if !s.published.TryLock() {
		return
	}
	defer s.published.Unlock()
	s.mu.Lock()
	ts := slices.Clone(s.trimmed)
	s.mu.Unlock()
	for _, t := range ts {
		b := t.blob.Layer()
		if t.made == self {
			b = blob // its job is still running: this is its then
		}
		if b == nil {
			continue // not compressed yet
		}
		// One that cannot be stored yet stays where later layers' tars
		// read it: the last call, in publish, removes it and says why.
		_ = t.made.Publish(s.ws, b, false)
	}
}

// publish marks the build's steps done, then stores, in the background,
// the snapshots of the trimmed layers publishReady has not: once the
// compressor is done (every later layer's Tar reads them), or removes
// those whose blob was not made. wait waits for it (the compressor must
// end for it to end).
func (s *session) publish() (wait func()) {
	s.stepsDone.Store(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.compressor.Wait(context.Background())
		s.mu.Lock()
		ts := s.trimmed
		s.trimmed = nil
		s.mu.Unlock()
		s.published.Lock()
		defer s.published.Unlock()
		for _, t := range ts {
			if err := t.made.Publish(s.ws, t.blob.Layer(), true); err != nil {
				s.log.Warn("storing a step's snapshot", "err", err)
			}
		}
	}()
	return func() { <-done }
}

// recorder returns what records a step in the cache once its layer's
// blob is whole: rec is what the step reported (no digest or size yet);
// the entry gets the layer's full record, and so will the step's result
// (session.finish).
func (e *executor) recorder(entry *cache.Entry, rec *cache.Layer, pos, stage string) func(context.Context, *commit.Layer, time.Duration) error {
	return func(ctx context.Context, l *commit.Layer, took time.Duration) error {
		final, err := cache.LayerOf(l, rec.Added, rec.Modified, rec.Deleted)
		if err != nil {
			return fmt.Errorf("%s: %w", pos, err)
		}
		entry.Layer = final
		if err := e.cache.Record(ctx, entry, l); err != nil {
			return fmt.Errorf("%s: recording the step in the cache: %w", pos, err)
		}
		e.emit(Event{Kind: EventInfo, Time: time.Now(), Stage: stage, Pos: pos, Layer: final, Text: fmt.Sprintf("layer of %s compressed: %s in %s",
			pos, units.Bytes(final.Size), took.Round(time.Millisecond))})
		e.mu.Lock()
		defer e.mu.Unlock()
		e.final[rec] = compressed{rec: final, took: took}
		return nil
	}
}

// hit takes a cached result: its layer joins the chain, and --cache-to
// gets the entry too.
func (e *executor) hit(ctx context.Context, res *stageResult, h *cache.Hit, row PlanStep, ev Event) (v1.Layer, *cache.Layer, bool, error) {
	if h.Layer != nil {
		res.chain = append(res.chain, &chain.Layer{DiffID: h.Entry.Layer.DiffID, Layer: h.Layer})
	}
	if e.o.DryRun {
		row.Will = "cached"
		if h.Remote {
			row.Will = "cached (" + h.From + ")"
		}
		e.record(row)
		return h.Layer, h.Entry.Layer, true, nil
	}
	if err := e.cache.Export(ctx, h); err != nil {
		return nil, nil, false, fmt.Errorf("%s: recording the cached step in --cache-to: %w", row.Pos, err)
	}
	if h.Remote {
		e.info(ev, "cache hit in "+h.From)
	}
	return h.Layer, h.Entry.Layer, true, nil
}

func (e *executor) record(row PlanStep) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.dry = append(e.dry, row)
}

func (e *executor) info(ev Event, text string) {
	ev.Text = text
	e.event(ev, EventInfo)
}

// inputs computes what determines a step on the layers parent. It returns
// nil and why not when that is not known: in a dry run, after a step that
// would run. It waits for the diffIDs of trimmed layers being compressed
// (see session.learn).
func (e *executor) inputs(ctx context.Context, sp *plan.Stage, parent []*chain.Layer, s *plan.Step) (*cache.Inputs, string, error) {
	ids, ok, err := chain.DiffIDs(ctx, parent)
	if err != nil || !ok {
		return nil, "an earlier step runs", err
	}
	var from []string
	if s.From != nil && s.From.Stage >= 0 {
		src, err := e.waitStage(ctx, s.From.Stage)
		if err != nil {
			return nil, "", err
		}
		if from, ok, err = chain.DiffIDs(ctx, src.chain); err != nil || !ok {
			return nil, fmt.Sprintf("stage %q has steps that run", s.Recipe.Copy.From.Ref), err
		}
	}
	in, err := s.Inputs(sp, ids, from, e.args)
	return in, "--no-cache", err
}

// stageLabel names a stage in events and plans: its name, and the
// platform in a multi-platform build.
func (e *executor) stageLabel(sp *plan.Stage) string {
	if e.label == "" {
		return sp.Recipe.Name
	}
	return strings.TrimSpace(sp.Recipe.Name + " " + sp.Platform.String())
}
