package build

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/build/plan"
	"github.com/stratabuild/strata/commit"
)

// image assembles the final image from the target stage's result and the
// config state its steps ended with; its step layers are compressed as
// the options ask (see encode), labels and annotations of the options
// merged over the recipe's.
func (e *executor) image(ctx context.Context, res *stageResult) (v1.Image, error) {
	sp := e.plan.Stages[len(e.plan.Stages)-1]
	im := e.plan.Image
	state := sp.Final
	cfg := commit.Config{
		Env:        state.Environ(),
		Entrypoint: im.Entrypoint, EntrypointSet: im.Entrypoint != nil,
		Cmd: im.Cmd, CmdSet: im.Cmd != nil,
		WorkingDir: state.Workdir, User: state.User,
		Labels: merged(im.Labels, e.o.Labels), Volumes: im.Volumes, StopSignal: im.StopSignal,
	}
	for _, p := range im.Expose {
		cfg.ExposedPorts = append(cfg.ExposedPorts, p.String())
	}
	var created time.Time
	if e.epoch != nil {
		created = *e.epoch
	}
	var platform *v1.Platform // the base's, unless the recipe or --platform says
	if sp.PlatformSet {
		platform = &sp.Platform
	}
	steps, err := e.encode(ctx, res.history)
	if err != nil {
		return nil, err
	}
	if err := e.warnSurplusHistory(sp); err != nil {
		return nil, err
	}
	img, err := commit.Image(res.base, commit.ImageOptions{
		Steps: steps, Config: cfg, Created: created, Annotations: merged(im.Annotations, e.o.Annotations), Platform: platform,
	})
	if err != nil {
		return nil, fmt.Errorf("assembling the image: %w", err)
	}
	return img, nil
}

// warnSurplusHistory warns when the image the final stage sp starts from
// (its base, or the base of the stage it continues) has more history
// entries with a layer than layers, as BuildKit warns: commit.Image marks
// the surplus ones empty_layer.
func (e *executor) warnSurplusHistory(sp *plan.Stage) error {
	root := sp
	for root.Base == nil {
		var ok bool
		if root, ok = e.plan.StageByIndex(root.BaseStage); !ok {
			return nil // not planned: the stage's build has said so
		}
	}
	cf, err := root.Base.ConfigFile()
	if err != nil {
		return fmt.Errorf("%s: base %s: %w", root.Recipe.From.Pos, root.Recipe.From.Ref, err)
	}
	if n := commit.SurplusHistory(cf); n > 0 {
		layers := func(n int) string {
			if n == 1 {
				return "1 layer"
			}
			return fmt.Sprintf("%d layers", n)
		}
		e.emit(Event{Kind: EventInfo, Time: time.Now(), Text: fmt.Sprintf(
			"warning: %s: the base image %s has history entries for %s but %s (invalid image config with unaccounted layers): the image marks the last %d of those entries empty_layer, as BuildKit does",
			root.Recipe.From.Pos, root.Recipe.From.Ref, layers(len(cf.RootFS.DiffIDs)+n), layers(len(cf.RootFS.DiffIDs)), n)})
	}
	return nil
}

// merged is over set on top of base; nil when both are empty.
func merged(base, over map[string]string) map[string]string {
	if len(over) == 0 {
		return base
	}
	out := maps.Clone(base)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, over)
	return out
}

// encode returns history with every step layer compressed as the options
// ask. Compression is an output choice, not part of a cache key: a cached
// layer whose blob is compressed otherwise (another codec or level, or a
// level not recorded) is re-encoded — decompressed and compressed again,
// its diffID unchanged — once: the blob is kept under the state root and
// found again by later builds, and by the other platforms of this one
// (cache.Local.Encoded). The cache entry keeps the layer as first
// committed; the step's record in the result (--metadata-file) becomes
// the layer the image holds. Base image layers are kept as they are.
func (e *executor) encode(ctx context.Context, history []commit.Step) ([]commit.Step, error) {
	want := e.o.Compression.Normalized()
	out := slices.Clone(history)
	for i, s := range out {
		if s.Layer == nil {
			continue
		}
		rec, pos := e.stepLayer(s.Layer)
		if rec == nil {
			continue
		}
		if have, ok := rec.Compression(); ok && have == want {
			continue
		}
		start := time.Now()
		layer, made, err := e.cache.Local.Reencode(ctx, s.Layer, rec, want)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pos, err)
		}
		if made {
			e.emit(Event{Kind: EventInfo, Time: time.Now(), Text: fmt.Sprintf("re-encoded the layer of %s as %s in %s", pos, want, time.Since(start).Round(time.Millisecond))})
		}
		if err := e.noteReencoded(rec, layer); err != nil {
			return nil, fmt.Errorf("%s: %w", pos, err)
		}
		out[i].Layer = layer
	}
	return out, nil
}

// noteReencoded notes that the layer of rec is held by the image as layer,
// its re-encoding; the steps' records say so once every platform's image
// is assembled (recordReencoded).
func (e *executor) noteReencoded(rec *cache.Layer, layer v1.Layer) error {
	now, err := cache.LayerOf(layer, rec.Added, rec.Modified, rec.Deleted)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.reencoded == nil {
		e.reencoded = map[string]*cache.Layer{}
	}
	e.reencoded[rec.Digest] = now
	return nil
}

// recordReencoded makes the records of the steps whose layers were
// re-encoded describe the layers the images hold.
func (s *session) recordReencoded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, st := range s.steps {
		if st.Layer == nil {
			continue
		}
		if now, ok := s.reencoded[st.Layer.Digest]; ok {
			s.steps[i].Layer = now
		}
	}
}

// stepLayer returns the cache record of the step whose layer is l, and the
// step's position; nil if no step made l.
func (e *executor) stepLayer(l v1.Layer) (*cache.Layer, string) {
	dg, err := l.Digest()
	if err != nil {
		return nil, ""
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.steps {
		if s.Layer != nil && s.Layer.Digest == dg.String() {
			return s.Layer, s.Pos
		}
	}
	return nil, ""
}

// summary describes the planned stages for a dry run.
func summary(p *plan.Plan) []PlanStage {
	var out []PlanStage
	for _, sp := range p.Stages {
		out = append(out, PlanStage{Stage: sp.Recipe.Name, Base: sp.Recipe.From.Ref, Digest: sp.BaseDigest, Platform: sp.Platform.String()})
	}
	return out
}
