package build

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/build/chain"
	"github.com/stratabuild/strata/build/plan"
	"github.com/stratabuild/strata/build/tidy"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/fscopy"
	"github.com/stratabuild/strata/internal/stateroot"
	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/recipe"
)

// compressed is a step's layer once compressed, and how long that took.
type compressed struct {
	rec  *cache.Layer
	took time.Duration
}

// finish waits for the layers still being compressed and their cache
// records, then completes the steps' records: their digests and sizes,
// and the compression times.
func (s *session) finish(ctx context.Context) error {
	if err := s.compressor.Wait(ctx); err != nil {
		return fmt.Errorf("compressing the layers: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, st := range s.steps {
		f, ok := s.final[st.Layer]
		if !ok {
			continue
		}
		s.steps[i].Layer = f.rec
		if st.Timings != nil {
			t := *st.Timings // the event's stays as it was sent
			t.Compress = f.took
			s.steps[i].Timings = &t
		}
	}
	return nil
}

// run executes every platform's plan at once and returns each one's
// stage results (none in a dry run).
func (s *session) run(ctx context.Context, plans []*plan.Plan) ([]*executor, []*stageResult, error) {
	execs := make([]*executor, len(plans))
	for _, p := range plans {
		s.platforms = append(s.platforms, p.Stages[len(p.Stages)-1].Platform)
	}
	for i, p := range plans {
		execs[i] = &executor{session: s, plan: p, epoch: p.Epoch, index: i}
		if len(plans) > 1 {
			execs[i].label = p.Stages[len(p.Stages)-1].Platform.String()
		}
	}
	results := make([]*stageResult, len(execs))
	errs := make([]error, len(execs))
	var wg sync.WaitGroup
	for i, e := range execs {
		wg.Go(func() {
			results[i], errs[i] = e.stages(ctx)
			if errs[i] != nil && e.label != "" { // which platform's build failed
				errs[i] = fmt.Errorf("%s: %w", e.label, errs[i])
			}
		})
	}
	wg.Wait()
	if err := firstCause(errs); err != nil {
		return nil, nil, err
	}
	return execs, results, nil
}

// assemble assembles each platform's image from its target stage.
func assemble(ctx context.Context, execs []*executor, results []*stageResult) ([]v1.Image, error) {
	images := make([]v1.Image, len(execs))
	for i, e := range execs {
		img, err := e.image(ctx, results[i])
		if err != nil {
			return nil, err
		}
		images[i] = img
	}
	return images, nil
}

// firstCause is the error that stopped a build: a real one, before the
// "context canceled" of what it stopped; nil if there is none.
func firstCause(errs []error) error {
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// output assembles the images and writes the image, or the index of the
// images, everywhere.
func (s *session) output(ctx context.Context, execs []*executor, results []*stageResult) (*Result, error) {
	images, err := assemble(ctx, execs, results)
	if err != nil {
		return nil, err
	}
	s.recordReencoded()
	s.uploader.Wait()
	wo := commit.WriteOptions{Tags: s.o.Tags, Registry: s.o.Registry, Blobs: s.root.Blobs(),
		Done: func(out commit.Output, took time.Duration) {
			s.emit(Event{Kind: EventInfo, Time: time.Now(), Text: fmt.Sprintf("wrote %s in %s", out, took.Round(time.Millisecond))})
		},
	}
	dg, cfg, err := commit.WriteImages(ctx, images, s.o.Outputs, wo)
	if err != nil {
		return nil, err
	}
	res := &Result{Digest: dg, ConfigDigest: cfg, Images: images, Steps: s.steps}
	if len(images) == 1 {
		res.Image = images[0]
	}
	return res, nil
}

// announce says what the build decided before it runs anything: each
// platform's epoch (once if they agree), and the ignore file.
func (s *session) announce(plans []*plan.Plan) {
	for i, p := range plans {
		if p.Epoch == nil || i > 0 && plans[0].Epoch != nil && p.Epoch.Equal(*plans[0].Epoch) {
			continue
		}
		stage := ""
		if len(plans) > 1 && !allEpochsEqual(plans) {
			stage = p.Stages[len(p.Stages)-1].Platform.String()
		}
		s.emit(Event{Kind: EventInfo, Time: time.Now(), Stage: stage, Text: "build epoch " + p.Epoch.Format(time.RFC3339) + " (" + p.EpochFrom + ")"})
	}
	s.announceOnBuild(plans)
	for _, w := range plan.Warnings(plans) {
		s.emit(Event{Kind: EventInfo, Time: time.Now(), Text: "warning: " + w})
	}
	if ig := plans[0].Ignore; ig != nil && ig.File != "" && ig.File != fscopy.IgnoreFile {
		s.emit(Event{Kind: EventInfo, Time: time.Now(), Text: "excluding what " + ig.File + " lists from copies (there is no " + fscopy.IgnoreFile + ")"})
	}
}

// announceOnBuild warns of base images whose config holds ONBUILD
// triggers: Dockerfile instructions docker runs at the start of a build
// on the image. strata does not run them, and its images leave them out
// (docker's leave them out too, once run), so that a build on the image
// does not run them a generation late.
func (s *session) announceOnBuild(plans []*plan.Plan) {
	seen := map[string]bool{}
	for _, p := range plans {
		for _, sp := range p.Stages {
			if sp.Base == nil || seen[sp.BaseDigest] {
				continue
			}
			seen[sp.BaseDigest] = true
			cf, err := sp.Base.ConfigFile()
			if err != nil || len(cf.Config.OnBuild) == 0 {
				continue
			}
			stage := sp.Recipe.Name
			if len(plans) > 1 {
				stage = strings.TrimSpace(stage + " " + sp.Platform.String())
			}
			s.emit(Event{Kind: EventInfo, Time: time.Now(), Stage: stage,
				Text: fmt.Sprintf("warning: %s: the base image %s has ONBUILD triggers, which strata does not run (docker runs them first): %q; the image leaves them out",
					sp.Recipe.From.Pos, sp.Recipe.From.Ref, cf.Config.OnBuild)})
		}
	}
}

// newSession opens the state root, takes its build lock (prune waits
// while a build runs) and reaps what killed builds left. Its release
// ends the session: the lock released, it removes the snapshots of steps
// left unrecorded, if no other build runs.
func newSession(ctx context.Context, o Options, r *recipe.Recipe, d Deps) (*session, func(), error) {
	root, err := stateroot.Open(o.Root)
	if err != nil {
		return nil, nil, err
	}
	e := &session{o: o, context: r.Context, root: root, runner: d.Runner, emit: d.Progress, log: d.Log,
		args: map[string]string{}, history: r.RelFile(), shared: &sharedStages{stages: map[string]*stageDone{}},
		final: map[*cache.Layer]compressed{}}
	if e.runner == nil {
		e.runner = runcRunner{}
	}
	if e.emit == nil {
		e.emit = func(Event) {}
	}
	// Stages and the background compression report at once: one event
	// at a time reaches the caller.
	var emitMu sync.Mutex
	progress := e.emit
	e.emit = func(ev Event) {
		emitMu.Lock()
		defer emitMu.Unlock()
		progress(ev)
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	for _, a := range r.Args {
		e.args[a.Name] = a.Value
	}
	if layers.OldSnapshots(root.Snapshots()) {
		// An older strata's snapshots (see layers.RetireOldSnapshots)
		// go once no build, of either, runs on the root.
		if release, ok, err := root.TryLockExclusive(); ok {
			err = layers.RetireOldSnapshots(root.Snapshots())
			release()
			if err != nil {
				return nil, nil, err
			}
		} else if err != nil {
			return nil, nil, err
		}
	}
	release, err := root.LockBuild()
	if err != nil {
		return nil, nil, err
	}
	tidy.Reap(ctx, root, o.Runtime, func(text string) { e.emit(Event{Kind: EventInfo, Time: time.Now(), Text: text}) }, e.log)
	store, err := layers.OpenStore(root.Snapshots(), e.log)
	if err != nil {
		release()
		return nil, nil, err
	}
	store.SetLimits(o.LayerLimits)
	e.ws = &chain.Workspace{Store: store, Blobs: root.Blobs(), Mounts: root.Mounts(), Mounter: cmp.Or[chain.Mounter](d.Mounter, chain.Overlay{}), Log: e.log}
	local, err := cache.OpenLocal(root.CacheIndex(), root.Blobs())
	if err != nil {
		store.Close()
		release()
		return nil, nil, err
	}
	e.cache = &cache.Cache{Local: local, From: o.CacheFrom, To: o.CacheTo, Log: e.log}
	return e, func() {
		store.Close()
		release()
		removeUnrecorded(context.WithoutCancel(ctx), root, local, store, e.log)
	}, nil
}

// removeUnrecorded removes the snapshots of steps whose entries a build
// (this one, or one killed before) did not record, when no other build
// runs on the root; otherwise a later build does.
func removeUnrecorded(ctx context.Context, root *stateroot.Root, local *cache.Local, store *layers.Store, log *slog.Logger) {
	if !local.HasUnrecorded() {
		return
	}
	release, ok, err := root.TryLockExclusive()
	if !ok {
		if err != nil {
			log.Warn("removing the snapshots of unrecorded steps", "err", err)
		}
		return
	}
	defer release()
	if _, err := local.RemoveUnrecorded(ctx, store); err != nil {
		log.Warn("removing the snapshots of unrecorded steps", "err", err)
	}
}

// allEpochsEqual reports whether every plan has the first one's epoch.
func allEpochsEqual(plans []*plan.Plan) bool {
	for _, p := range plans[1:] {
		if (p.Epoch == nil) != (plans[0].Epoch == nil) || p.Epoch != nil && !p.Epoch.Equal(*plans[0].Epoch) {
			return false
		}
	}
	return true
}
