package build

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/build/chain"
	"github.com/stratabuild/strata/build/plan"
	"github.com/stratabuild/strata/build/sandbox"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/recipe"
)

// Options are the settings of one build, parsed and checked by the caller.
type Options struct {
	// Root is the state directory (layers, cache).
	Root string
	// Target is the stage to build; "" for the last.
	Target string
	// Tags name the result in every output.
	Tags []name.Tag
	// Outputs are where the image goes (--push is a registry output,
	// --load a daemon output).
	Outputs []commit.Output
	// Secrets are the contents of the secret mounts, by id.
	Secrets map[string][]byte
	// Platforms are the platforms to build for; several give an image
	// index. Empty: the recipe's platforms:, else the host's.
	Platforms []v1.Platform
	// NoCache runs every step.
	NoCache bool
	// DryRun plans and asks the caches, but runs nothing and writes no
	// output: Result.Plan says what a build would do.
	DryRun bool
	// CacheFrom are read after the local cache; CacheTo receive every
	// step's result.
	CacheFrom, CacheTo []cache.Store
	// Compression of the image's layers: new layers are written with it,
	// and cached ones compressed otherwise are re-encoded for the output
	// (never part of a cache key).
	Compression commit.Compression
	// Labels are merged over the recipe's image labels (--label), and
	// Annotations over its manifest annotations (--annotation).
	Labels, Annotations map[string]string
	// Runtime is the OCI runtime binary running the steps; "" for runc.
	Runtime string
	// Registry says how registries are reached.
	Registry commit.RegistryOptions
	// Epoch is the build epoch the user gives: SOURCE_DATE_EPOCH, or
	// --timestamp UNIX (EpochFromFlag). Nil: derived from the inputs (see
	// plan.Plan.Epoch), unless Now (--timestamp now) asks for the clock.
	Epoch         *time.Time
	EpochFromFlag bool
	Now           bool
	// LayerLimits bound what a base layer may expand to when unpacked.
	LayerLimits layers.Limits
	// PidsLimit and MemoryLimit bound each run step (see sandbox.Options).
	PidsLimit, MemoryLimit int64
}

// Runner runs one process in a mounted rootfs; build/sandbox's runc runner is
// the real one.
type Runner interface {
	Run(ctx context.Context, o sandbox.Options) error
}

type runcRunner struct{}

func (runcRunner) Run(ctx context.Context, o sandbox.Options) error { return sandbox.Run(ctx, o) }

var _ Runner = runcRunner{}

// Deps are the parts a build uses; nil fields get the real ones. Tests give
// fakes to exercise the orchestration without root.
type Deps struct {
	Runner   Runner
	Mounter  chain.Mounter // overlay's mount
	Progress ProgressFunc  // nil: no progress
	Log      *slog.Logger
}

// Result is what a build produced.
type Result struct {
	// Digest is the image's manifest digest, "sha256:…".
	Digest       string
	ConfigDigest string   // of a single image
	Image        v1.Image // a single image; nil for an index
	// Images are the images built, one per platform (with Image).
	Images []v1.Image
	// Steps reports each step that was built, in order.
	Steps []StepResult
	// Phases say where the build spent its time.
	Phases Phases
	// Plan is what a dry run found: per run or copy step, whether it
	// would hit the cache or run, and why. Empty unless Options.DryRun.
	Plan []PlanStep
	// Stages are the planned stages' bases (dry runs).
	Stages []PlanStage
}

// Phases say where a build spent its time.
type Phases struct {
	// Resolve is planning: bases resolved (manifests and configs pulled),
	// the context's copy inputs hashed.
	Resolve time.Duration `json:"resolve_ns"`
	// Steps is the stages: every step, with the unpacking of the layers
	// they run on and the commit of what they made (see Timings).
	Steps time.Duration `json:"steps_ns"`
	// Compress is the wait, after the steps, for the layers still being
	// compressed in the background (and recorded in the cache).
	Compress time.Duration `json:"compress_ns"`
	// Output is assembling the image (re-encoding cached layers an
	// output wants compressed otherwise) and writing and pushing it.
	Output time.Duration `json:"output_ns"`
}

// PlanStage is a planned stage: its base, resolved, and platform.
type PlanStage struct {
	Stage, Base, Digest, Platform string
}

// PlanStep is one step of a dry run's plan.
type PlanStep struct {
	Stage  string `json:"stage,omitempty"`
	Pos    string `json:"pos"`
	Action string `json:"action"`
	Text   string `json:"text"`
	// Will is "cached", "cached (REPO)" for a registry cache hit, or "run".
	Will string `json:"will"`
	// Why explains a run.
	Why string `json:"why,omitempty"`
	// order sorts a dry run's rows: by platform (as given), by the
	// recipe's stage, by step, then by the target they were made for (a
	// stage continuing a ${BUILDPLATFORM} stage is built for it in
	// every target); the stages run at once.
	order [4]int
}

// StepResult reports one step of a build.
type StepResult struct {
	Stage    string        `json:"stage,omitempty"`
	Pos      string        `json:"pos"`
	Action   string        `json:"action"`
	Cached   bool          `json:"cached"`
	Duration time.Duration `json:"duration_ns"`
	Layer    *cache.Layer  `json:"layer,omitempty"`
	Timings  *Timings      `json:"timings,omitempty"` // of a step that ran
}

// Build plans the recipe r, then builds it with the options o and writes
// every output o asks for: one image, or, for several platforms, one
// image index. On failure nothing stays mounted, no upper dir is left
// behind and no output is replaced by a partial one.
func Build(ctx context.Context, o Options, r *recipe.Recipe, d Deps) (*Result, error) {
	targets, err := plan.Targets(r, o.Platforms)
	if err != nil {
		return nil, err
	}
	if err := commit.CheckOutputs(ctx, o.Outputs, false); err != nil { // the CLI asked the daemon
		return nil, err
	}
	if len(targets) > 1 {
		if err := commit.CheckIndexOutputs(o.Outputs); err != nil {
			return nil, err
		}
	}
	s, release, err := newSession(ctx, o, r, d)
	if err != nil {
		return nil, err
	}
	defer release()
	s.learn = !o.DryRun && (o.NoCache || !s.cache.CanHit())
	sums := cache.OpenSums(s.root.ContextSums(), r.Context, o.NoCache)
	po := plan.Options{Target: o.Target, Registry: o.Registry, Secrets: o.Secrets,
		Epoch: o.Epoch, EpochFromFlag: o.EpochFromFlag, Now: o.Now, Sums: sums, StateRoot: o.Root}
	start := time.Now()
	plans, err := plan.MakeAll(ctx, po, targets)
	if err != nil {
		return nil, err
	}
	if err := sums.Save(); err != nil {
		s.log.Warn("remembering the context's file digests", "err", err)
	}
	var phases Phases
	phases.Resolve = time.Since(start)
	s.announce(plans)
	// Layers are compressed in the background until a digest is needed:
	// a stage's failure does not stop that (the steps before it are
	// recorded in the cache), an interruption does.
	s.compressor = commit.NewCompressor(ctx, s.root.Blobs(), o.Compression)
	parent := ctx
	// Images pulled stay bound to this context until the outputs are
	// written: it is cancelled when a stage fails, and after the outputs.
	ctx, cancel := context.WithCancelCause(ctx)
	s.cancel = cancel
	// A push gets the image's step layers as soon as their blobs are whole.
	if !o.DryRun && slices.ContainsFunc(o.Outputs, func(out commit.Output) bool { return out.Type == commit.OutputRegistry }) {
		s.uploader = commit.NewUploader(ctx, o.Tags, o.Registry, s.log)
		// Refused credentials fail the push anyway: stop now, not after
		// the last step.
		s.uploader.OnRefused(func(err error) { cancel(fmt.Errorf("--push: %w", err)) })
		s.imageStages = imageStages(plans)
	}
	// On every return: what still runs stops, the compressor before the
	// uploads it starts; the trimmed layers' snapshots are stored; the
	// base layers' blobs, named in the background, are named.
	published := func() {}
	defer func() {
		cancel(nil)
		s.compressor.Close()
		s.uploader.Wait()
		published()
		if err := commit.WaitNamed(); err != nil {
			s.log.Warn("keeping base layers' blobs under the state root", "err", err)
		}
	}()
	// cancelled gives, for an error of work ctx stopped, what stopped it
	// when that was not the caller: a push refused, during the steps or
	// after them.
	cancelled := func(err error) error {
		if cause := context.Cause(ctx); errors.Is(err, context.Canceled) && parent.Err() == nil && cause != nil && !errors.Is(cause, context.Canceled) {
			return cause
		}
		return err
	}
	start = time.Now()
	execs, results, err := s.run(ctx, plans)
	err = cancelled(err)
	published = s.publish()
	phases.Steps = time.Since(start)
	start = time.Now()
	if ferr := s.finish(parent); err == nil {
		err = ferr
	}
	phases.Compress = time.Since(start)
	if err == nil && ctx.Err() != nil {
		err = cancelled(ctx.Err()) // a push refused once the steps were done
	}
	if err != nil {
		return nil, err
	}
	if o.DryRun {
		var stages []PlanStage
		for _, p := range plans {
			stages = append(stages, summary(p)...)
		}
		slices.SortStableFunc(s.dry, func(a, b PlanStep) int { return slices.Compare(a.order[:], b.order[:]) })
		return &Result{Plan: s.dry, Stages: stages}, nil
	}
	start = time.Now()
	res, err := s.output(ctx, execs, results)
	if err != nil {
		return nil, cancelled(err)
	}
	phases.Output = time.Since(start)
	res.Phases = phases
	return res, nil
}
