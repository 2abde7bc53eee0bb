package build

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/stratabuild/strata/recipe"
)

// stages builds the stages in dependency order, each as soon as the stages
// it needs are built, so that independent stages run concurrently. The
// first failure cancels the others. It returns the last stage's result.
func (b *builder) stages(ctx context.Context, stages []*recipe.Stage) (*stageResult, error) {
	b.done = make(map[int]*stageDone, len(stages))
	for _, st := range stages {
		b.done[st.Index] = &stageDone{ready: make(chan struct{})}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(stages))
	for i, st := range stages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, dep := range st.DependsOn {
				if _, err := b.waitStage(ctx, dep); err != nil {
					return // the failing stage reports
				}
			}
			res, err := b.stage(ctx, st)
			if err != nil {
				errs[i] = err
				b.cancel(err)
				return
			}
			d := b.done[st.Index]
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
	return b.done[stages[len(stages)-1].Index].res, nil
}

// waitStage waits for stage index to be built and returns its result.
func (b *builder) waitStage(ctx context.Context, index int) (*stageResult, error) {
	d, ok := b.done[index]
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
