package build

import (
	"context"
	"fmt"
	"sync"

	"github.com/stratabuild/strata/build/plan"
)

// stages builds the stages at once: a stage starts as soon as the stage it
// continues is built (if any), and a step copying from a stage waits for
// that stage where it needs it, so that the steps before it run meanwhile
// (a final stage's apt-get install while the build stage compiles). A stage
// another platform's executor builds too (the same fingerprint: a stage on
// ${BUILDPLATFORM} that does not depend on the target) is built once, by
// whichever claims it first. The first failure cancels everything. It
// returns the last stage's result.
func (e *executor) stages(ctx context.Context) (*stageResult, error) {
	stages := e.plan.Stages
	e.done = make(map[int]*stageDone, len(stages))
	var owned []*plan.Stage
	for _, st := range stages {
		d, first := e.shared.claim(e.plan.Fingerprint(st))
		e.done[st.Recipe.Index] = d
		if first {
			owned = append(owned, st)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(owned))
	for i, st := range owned {
		wg.Go(func() {
			res, err := e.runStage(ctx, st)
			if err != nil {
				errs[i] = err
				e.cancel(err)
				return
			}
			d := e.done[st.Recipe.Index]
			d.res = res
			close(d.ready)
		})
	}
	wg.Wait()
	if err := firstCause(errs); err != nil {
		return nil, err
	}
	return e.waitStage(ctx, stages[len(stages)-1].Recipe.Index)
}

// waitStage waits for stage index to be built and returns its result.
// If the build stops first, the error is context.Canceled: what stopped
// it (the stage's own failure, or ^C) is reported where it happened.
func (e *executor) waitStage(ctx context.Context, index int) (*stageResult, error) {
	d, ok := e.done[index]
	if !ok {
		return nil, fmt.Errorf("stage %d is not part of this build", index)
	}
	select {
	case <-d.ready:
		return d.res, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for stage %d: %w", index+1, context.Canceled)
	}
}

// awaitStage waits for stage index to be built, saying so on ev's step
// if it is not (name: the stage as the recipe names it).
func (e *executor) awaitStage(ctx context.Context, index int, ev Event, name string) error {
	if d, ok := e.done[index]; ok {
		select {
		case <-d.ready:
			return nil
		default:
			e.info(ev, "waiting for stage "+name)
		}
	}
	_, err := e.waitStage(ctx, index)
	return err
}

// stageDone is a stage being built: ready is closed when res is set.
type stageDone struct {
	ready chan struct{}
	res   *stageResult
}

// sharedStages are the stages of a build by fingerprint.
type sharedStages struct {
	mu     sync.Mutex
	stages map[string]*stageDone
}

// claim returns the stage of fingerprint fp; first is true for the caller
// that is to build it.
func (s *sharedStages) claim(fp string) (d *stageDone, first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.stages[fp]; ok {
		return d, false
	}
	d = &stageDone{ready: make(chan struct{})}
	s.stages[fp] = d
	return d, true
}

// imageStages are the fingerprints of the stages whose layers are in the
// images the plans make: each plan's target stage and the stages it
// continues (from: STAGE), not the stages only copied from.
func imageStages(plans []*plan.Plan) map[string]bool {
	out := map[string]bool{}
	for _, p := range plans {
		sp, ok := p.Stages[len(p.Stages)-1], true
		for ok {
			out[p.Fingerprint(sp)] = true
			sp, ok = p.StageByIndex(sp.BaseStage)
		}
	}
	return out
}
