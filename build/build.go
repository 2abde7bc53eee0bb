package build

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/build/plan"
	"github.com/stratabuild/strata/build/sandbox"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/fscopy"
	"github.com/stratabuild/strata/internal/stateroot"
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
	// Compression of new layers.
	Compression commit.Compression
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

// Mounter mounts a stack of snapshots with a writable upper dir at a target;
// layers' overlay mount is the real one.
type Mounter interface {
	Mount(ctx context.Context, o layers.MountOptions) (Mounted, error)
}

// Mounted is a mounted rootfs. Target is where the step sees its /: the
// overlay mount point for the real mounter. Unmount must be idempotent.
type Mounted interface {
	Target() string
	Unmount() error
}

type runcRunner struct{}

func (runcRunner) Run(ctx context.Context, o sandbox.Options) error { return sandbox.Run(ctx, o) }

type overlayMounter struct{}

func (overlayMounter) Mount(ctx context.Context, o layers.MountOptions) (Mounted, error) {
	return layers.Mount(ctx, o)
}

var (
	_ Runner  = runcRunner{}
	_ Mounter = overlayMounter{}
)

// Deps are the parts a build uses; nil fields get the real ones. Tests give
// fakes to exercise the orchestration without root.
type Deps struct {
	Runner   Runner
	Mounter  Mounter
	Progress func(Event) // called from the stages' goroutines
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
	// Plan is what a dry run found: per run or copy step, whether it
	// would hit the cache or run, and why. Empty unless Options.DryRun.
	Plan []PlanStep
	// Stages are the planned stages' bases (dry runs).
	Stages []PlanStage
	// WouldPush lists what a dry run would push.
	WouldPush []string
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
}

// StepResult reports one step of a build.
type StepResult struct {
	Stage    string        `json:"stage,omitempty"`
	Pos      string        `json:"pos"`
	Action   string        `json:"action"`
	Cached   bool          `json:"cached"`
	Duration time.Duration `json:"duration_ns"`
	Layer    *cache.Layer  `json:"layer,omitempty"`
}

// Build plans the recipe r, then builds it with the options o and writes
// every output o asks for: one image, or, for several platforms, one
// image index. On failure nothing stays mounted, no upper dir is left
// behind and no output is replaced by a partial one.
func Build(ctx context.Context, o Options, r *recipe.Recipe, d Deps) (*Result, error) {
	targets, err := targetsOf(o, r)
	if err != nil {
		return nil, err
	}
	if err := commit.CheckOutputs(o.Outputs); err != nil {
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
	po := plan.Options{Target: o.Target, Registry: o.Registry, Secrets: o.Secrets,
		Epoch: o.Epoch, EpochFromFlag: o.EpochFromFlag, Now: o.Now, Compression: o.Compression}
	plans, err := plan.MakeAll(ctx, po, targets)
	if err != nil {
		return nil, err
	}
	if err := checkEmulation(plans); err != nil {
		return nil, err
	}
	s.announce(plans[0])
	// Images pulled stay bound to this context until the outputs are
	// written: it is cancelled when a stage fails, and after the outputs.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.cancel = cancel
	images, err := s.run(ctx, plans)
	if err != nil {
		return nil, err
	}
	if o.DryRun {
		var stages []PlanStage
		for _, p := range plans {
			stages = append(stages, summary(p)...)
		}
		return &Result{Plan: s.dry, Stages: stages, WouldPush: o.wouldPush()}, nil
	}
	return s.output(ctx, images)
}

// targetsOf lists the platforms to build, each with the recipe loaded for
// it: --platform, else the recipe's platforms:, else one target, the
// stage's platform or the host's.
func targetsOf(o Options, r *recipe.Recipe) ([]plan.Target, error) {
	platforms := o.Platforms
	if len(platforms) == 0 {
		for _, p := range r.Platforms {
			platforms = append(platforms, v1.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant})
		}
	}
	if len(platforms) == 0 {
		return []plan.Target{{Recipe: r}}, nil
	}
	var out []plan.Target
	for _, p := range platforms {
		rp, err := r.ForPlatform(recipe.Platform{OS: p.OS, Arch: p.Architecture, Variant: p.Variant})
		if err != nil {
			return nil, err
		}
		out = append(out, plan.Target{Recipe: rp, Platform: &p})
	}
	return out, nil
}

// run executes every platform's plan at once and returns each one's image
// (none in a dry run).
func (s *session) run(ctx context.Context, plans []*plan.Plan) ([]v1.Image, error) {
	execs := make([]*executor, len(plans))
	for i, p := range plans {
		execs[i] = &executor{session: s, plan: p}
		if len(plans) > 1 {
			execs[i].label = p.Stages[len(p.Stages)-1].Platform.String()
		}
	}
	results := make([]*stageResult, len(execs))
	errs := make([]error, len(execs))
	var wg sync.WaitGroup
	for i, e := range execs {
		wg.Go(func() { results[i], errs[i] = e.stages(ctx) })
	}
	wg.Wait()
	if err := firstCause(errs); err != nil {
		return nil, err
	}
	if s.o.DryRun {
		return nil, nil
	}
	images := make([]v1.Image, len(execs))
	for i, e := range execs {
		img, err := e.image(results[i])
		if err != nil {
			return nil, err
		}
		images[i] = img
	}
	return images, nil
}

// firstCause is the error that stopped a build: a real one, before the
// "context canceled" of what it stopped.
func firstCause(errs []error) error {
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return errors.Join(errs...)
}

// output writes the image, or the index of the images, everywhere.
func (s *session) output(ctx context.Context, images []v1.Image) (*Result, error) {
	wo := commit.WriteOptions{Tags: s.o.Tags, Registry: s.o.Registry, Blobs: s.root.Blobs(),
		Done: func(out commit.Output, took time.Duration) {
			s.emit(Event{Kind: EventInfo, Time: time.Now(), Text: fmt.Sprintf("wrote %s in %s", out, took.Round(time.Millisecond))})
		},
	}
	if len(images) > 1 {
		dg, err := commit.WriteIndex(ctx, images, s.o.Outputs, wo)
		if err != nil {
			return nil, err
		}
		return &Result{Digest: dg.String(), Images: images, Steps: s.steps}, nil
	}
	img := images[0]
	if err := commit.Write(ctx, img, s.o.Outputs, wo); err != nil {
		return nil, err
	}
	dg, err := img.Digest()
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigName()
	if err != nil {
		return nil, err
	}
	return &Result{Digest: dg.String(), ConfigDigest: cfg.String(), Image: img, Images: images, Steps: s.steps}, nil
}

// announce says what the build decided before it runs anything.
func (s *session) announce(p *plan.Plan) {
	s.epoch = p.Epoch
	if s.epoch != nil {
		s.emit(Event{Kind: EventInfo, Time: time.Now(), Text: "build epoch " + s.epoch.Format(time.RFC3339) + " (" + p.EpochFrom + ")"})
	}
	if ig := p.Ignore; ig != nil && ig.File != fscopy.IgnoreFile {
		s.emit(Event{Kind: EventInfo, Time: time.Now(), Text: "excluding what " + ig.File + " lists from copies (there is no " + fscopy.IgnoreFile + ")"})
	}
}

// newSession opens the state root, takes its build lock (prune waits
// while a build runs) and reaps what killed builds left.
func newSession(ctx context.Context, o Options, r *recipe.Recipe, d Deps) (*session, func(), error) {
	root, err := stateroot.Open(o.Root)
	if err != nil {
		return nil, nil, err
	}
	e := &session{o: o, context: r.Context, root: root, runner: d.Runner, mounter: d.Mounter, emit: d.Progress, log: d.Log,
		args: map[string]string{}, history: historyName(r), shared: &sharedStages{stages: map[string]*stageDone{}}}
	if e.runner == nil {
		e.runner = runcRunner{}
	}
	if e.mounter == nil {
		e.mounter = overlayMounter{}
	}
	if e.emit == nil {
		e.emit = func(Event) {}
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	for _, a := range r.Args {
		e.args[a.Name] = a.Value
	}
	release, err := root.LockBuild()
	if err != nil {
		return nil, nil, err
	}
	reap(ctx, root, o.Runtime, e.emit, e.log)
	if e.store, err = layers.OpenStore(root.Snapshots(), e.log); err != nil {
		release()
		return nil, nil, err
	}
	e.store.SetLimits(o.LayerLimits)
	local, err := cache.OpenLocal(root.CacheIndex(), root.Blobs())
	if err != nil {
		release()
		return nil, nil, err
	}
	e.cache = &cache.Cache{Local: local, From: o.CacheFrom, To: o.CacheTo, Log: e.log}
	return e, release, nil
}

// Prune removes the cache entries opts does not keep under the state root,
// then every layer blob and snapshot no kept entry uses. It waits for
// running builds to end and holds off new ones while it works.
func Prune(ctx context.Context, dir string, opts cache.PruneOptions) (*cache.PruneResult, error) {
	root, err := stateroot.OpenExisting(dir)
	if err != nil {
		return nil, err
	}
	release, err := root.LockExclusive(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	local, err := cache.OpenLocal(root.CacheIndex(), root.Blobs())
	if err != nil {
		return nil, err
	}
	store, err := layers.OpenStore(root.Snapshots(), nil)
	if err != nil {
		return nil, err
	}
	return local.Prune(ctx, opts, store)
}

// historyName is how image history names the recipe: its path relative to
// the build context, or its file name when it lies outside — never a host
// path, which would differ between checkouts.
func historyName(r *recipe.Recipe) string {
	ctx, err1 := filepath.Abs(r.Context)
	file, err2 := filepath.Abs(r.File)
	if err1 == nil && err2 == nil {
		if rel, err := filepath.Rel(ctx, file); err == nil && !strings.HasPrefix(rel, "..") {
			return filepath.ToSlash(rel)
		}
	}
	return filepath.Base(r.File)
}
