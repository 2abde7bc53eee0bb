package plan

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/stratabuild/strata/recipe"
)

// The sources of a build's epoch, as Plan.EpochFrom names them.
const (
	EpochFlag     = "--timestamp"
	EpochEnv      = "SOURCE_DATE_EPOCH"
	EpochBases    = "the newest base image's created time"
	EpochScratch  = "0: the bases are scratch or name no created time"
	EpochNowClock = "now (--timestamp now)"
)

// epoch decides the build epoch — the time every timestamp strata writes
// is set or clamped to — and pulls every base the stages start from, at
// once. An epoch the options give wins (--timestamp, else
// SOURCE_DATE_EPOCH). Otherwise it is derived from the inputs only: the
// newest `created` of the stages' base images, 0 when they are all
// scratch. Not a git commit time: that changes with every commit, and the
// epoch is part of every step's cache key, so each commit would rebuild
// everything; a base's created time changes only when the base does, when
// every key changes anyway. With --timestamp now there is no epoch: times
// are the wall clock's, as a build had before.
func (pl *planner) epoch(ctx context.Context, stages []*recipe.Stage) (*time.Time, string, error) {
	switch {
	case pl.o.Now:
		return nil, EpochNowClock, nil
	case pl.o.Epoch != nil:
		from := EpochEnv
		if pl.o.EpochFromFlag {
			from = EpochFlag
		}
		t := pl.o.Epoch.UTC()
		return &t, from, nil
	}
	var mu sync.Mutex
	var newest time.Time
	var errs []error
	var wg sync.WaitGroup
	for _, st := range stages {
		if st.From.Kind == recipe.KindStage || st.From.Kind == recipe.KindScratch {
			continue
		}
		p, _ := pl.platform(st)
		wg.Go(func() {
			img, err := pl.image(ctx, st.From, p, "the base")
			var created time.Time
			if err == nil {
				var cf, cerr = img.ConfigFile()
				if cerr == nil {
					created = cf.Created.Time
				}
				err = cerr
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if created.After(newest) {
				newest = created
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, "", err
	}
	if newest.IsZero() || newest.Before(time.Unix(0, 0)) {
		t := time.Unix(0, 0).UTC()
		return &t, EpochScratch, nil
	}
	t := newest.UTC().Truncate(time.Second)
	return &t, EpochBases, nil
}

// epochOf is the epoch a stage's layers are made with: the options' (or
// none, with --timestamp now), else the newest created time of what it
// is built from — its base image, or the stage it continues, and the
// stages it copies from — as the plan's epoch is of every base its
// image needs. A stage on ${BUILDPLATFORM} so has one epoch in every
// target, and is built once for all; its layers never change with the
// other platforms' bases.
func (pl *planner) epochOf(sp *Stage, st *recipe.Stage, p *Plan) (*time.Time, error) {
	switch {
	case pl.o.Now:
		return nil, nil
	case pl.o.Epoch != nil: // the user's
		t := pl.o.Epoch.UTC()
		return &t, nil
	}
	newest := time.Unix(0, 0).UTC()
	later := func(t *time.Time) {
		if t != nil && t.After(newest) {
			newest = t.UTC().Truncate(time.Second)
		}
	}
	switch {
	case st.From.Kind == recipe.KindStage:
		if prev, ok := p.byIdx[st.From.Stage]; ok {
			later(prev.Epoch)
		}
	case sp.Base != nil && st.From.Kind != recipe.KindScratch:
		cf, err := sp.Base.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("%s: reading the config of the base: %w", st.From.Pos, err)
		}
		later(&cf.Created.Time)
	}
	for _, step := range st.Steps {
		if c := step.Copy; c != nil && c.From != nil && c.From.Kind == recipe.KindStage {
			if src, ok := p.byIdx[c.From.Stage]; ok {
				later(src.Epoch)
			}
		}
	}
	return &newest, nil
}
