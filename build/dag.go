package build

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// stages builds the stages in dependency order, each as soon as the stages
// it needs are built, so that independent stages run concurrently. The
// first failure cancels the others. It returns the last stage's result.
func (e *executor) stages(ctx context.Context) (*stageResult, error) {
	stages := e.plan.Stages
	e.done = make(map[int]*stageDone, len(stages))
	for _, st := range stages {
		e.done[st.Recipe.Index] = &stageDone{ready: make(chan struct{})}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(stages))
	for i, st := range stages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, dep := range st.Recipe.DependsOn {
				if _, err := e.waitStage(ctx, dep); err != nil {
					return // the failing stage reports
				}
			}
			res, err := e.runStage(ctx, st)
			if err != nil {
				errs[i] = err
				e.cancel(err)
				return
			}
			d := e.done[st.Recipe.Index]
			d.res = res
			close(d.ready)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		// Prefer the error that caused the cancellation over the
		// "context canceled" of the stages it stopped.
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return e.done[stages[len(stages)-1].Recipe.Index].res, nil
}

// waitStage waits for stage index to be built and returns its result.
func (e *executor) waitStage(ctx context.Context, index int) (*stageResult, error) {
	d, ok := e.done[index]
	if !ok {
		return nil, fmt.Errorf("stage %d is not part of this build", index)
	}
	select {
	case <-d.ready:
		return d.res, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// stageDone is a stage being built: ready is closed when res is set.
type stageDone struct {
	ready chan struct{}
	res   *stageResult
}
