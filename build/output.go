package build

import (
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/build/plan"
	"github.com/stratabuild/strata/commit"
)

// image assembles the final image from the target stage's result and the
// config state its steps ended with.
func (e *executor) image(res *stageResult) (v1.Image, error) {
	sp := e.plan.Stages[len(e.plan.Stages)-1]
	im := e.plan.Image
	state := sp.Final
	cfg := commit.Config{
		Env:        state.Environ(),
		Entrypoint: im.Entrypoint, EntrypointSet: im.Entrypoint != nil,
		Cmd: im.Cmd, CmdSet: im.Cmd != nil,
		WorkingDir: state.Workdir, User: state.User,
		Labels: im.Labels, Volumes: im.Volumes, StopSignal: im.StopSignal,
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
	img, err := commit.Image(res.base, commit.ImageOptions{
		Steps: res.history, Config: cfg, Created: created, Annotations: im.Annotations, Platform: platform,
	})
	if err != nil {
		return nil, fmt.Errorf("assembling the image: %w", err)
	}
	return img, nil
}

// summary describes the planned stages for a dry run.
func summary(p *plan.Plan) []PlanStage {
	var out []PlanStage
	for _, sp := range p.Stages {
		out = append(out, PlanStage{Stage: sp.Recipe.Name, Base: sp.Recipe.From.Ref, Digest: sp.BaseDigest, Platform: sp.Platform.String()})
	}
	return out
}
