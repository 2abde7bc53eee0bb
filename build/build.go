package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/build/sandbox"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/recipe"
)

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

// Result is what a build produced.
type Result struct {
	// Digest is the image's manifest digest, "sha256:…": what `strata build` prints.
	Digest string
	// ConfigDigest is the digest of the image config.
	ConfigDigest string
	// Image is the built image.
	Image v1.Image
	// Steps reports each step that was built, in order.
	Steps []StepResult
	// Plan is what a dry run found: per run or copy step, whether it
	// would hit the cache or run, and why. Empty unless Options.DryRun.
	Plan []PlanStep
	// WouldPush lists what a dry run would push.
	WouldPush []string
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
	Layer    *LayerInfo    `json:"layer,omitempty"`
}

// Deps are the parts a build uses; nil fields get the real ones. Tests give
// fakes to exercise the orchestration without root.
type Deps struct {
	Runner   Runner
	Mounter  Mounter
	Progress ProgressFunc
	Log      *slog.Logger
}

// Build runs the recipe r with the options o and writes every output o asks
// for. On failure nothing stays mounted, no upper dir is left behind and no
// output is replaced by a partial one.
func Build(ctx context.Context, o Options, r *recipe.Recipe, d Deps) (*Result, error) {
	b, err := newBuilder(ctx, o, r, d)
	if err != nil {
		return nil, err
	}
	// While the build runs, `strata prune` waits: nothing it holds goes.
	release, err := cache.AcquireBuild(o.Root)
	if err != nil {
		return nil, err
	}
	defer release()
	// Images pulled while the stages build stay bound to this context
	// until the outputs are written: it is cancelled when a stage fails,
	// and only after the outputs otherwise.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	b.cancel = cancel
	stages, err := r.Needed(o.Target)
	if err != nil {
		return nil, err
	}
	if err := b.loadSecrets(stages); err != nil {
		return nil, err
	}
	last, err := b.stages(ctx, stages)
	if err != nil {
		return nil, err
	}
	if o.DryRun {
		return &Result{Plan: b.plan, WouldPush: b.wouldPush()}, nil
	}
	img, err := b.image(last)
	if err != nil {
		return nil, err
	}
	if err := b.output(ctx, img); err != nil {
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
	return &Result{Digest: dg.String(), ConfigDigest: cfg.String(), Image: img, Steps: b.steps}, nil
}

type builder struct {
	opts     Options
	recipe   *recipe.Recipe
	store    *layers.Store
	blobs    string // committed layer blobs
	mnt      string // mount points
	state    string // runtime state
	runner   Runner
	mounter  Mounter
	progress ProgressFunc
	log      *slog.Logger
	created  *time.Time // SOURCE_DATE_EPOCH, or nil
	secrets  map[string][]byte
	cancel   context.CancelCauseFunc // stops the whole build
	index    *cache.Index

	mu    sync.Mutex // guards steps, plan and done
	steps []StepResult
	plan  []PlanStep
	done  map[int]*stageDone
}

// stageDone is a stage being built: ready is closed when res is set.
type stageDone struct {
	ready chan struct{}
	res   *stageResult
}

func newBuilder(ctx context.Context, o Options, r *recipe.Recipe, d Deps) (*builder, error) {
	if o.Root == "" {
		return nil, errors.New("no state root (--root) given")
	}
	b := &builder{opts: o, recipe: r, runner: d.Runner, mounter: d.Mounter, progress: d.Progress, log: d.Log}
	if b.runner == nil {
		b.runner = runcRunner{}
	}
	if b.mounter == nil {
		b.mounter = overlayMounter{}
	}
	if b.progress == nil {
		b.progress = func(Event) {}
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.blobs = filepath.Join(o.Root, "blobs")
	b.mnt = filepath.Join(o.Root, "mnt")
	b.state = filepath.Join(o.Root, "runc")
	for _, dir := range []string{b.blobs, b.mnt, b.state} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("preparing state root: %w", err)
		}
	}
	b.reap(ctx)
	store, err := layers.OpenStore(filepath.Join(o.Root, "layers"), b.log)
	if err != nil {
		return nil, fmt.Errorf("opening snapshot store: %w", err)
	}
	b.store = store
	if b.index, err = cache.Open(filepath.Join(o.Root, "cache", "index")); err != nil {
		return nil, err
	}
	if o.SourceDateEpoch != nil {
		t := o.SourceDateEpoch.UTC()
		b.created = &t
	}
	return b, nil
}

// createdTime is the time the image and its new history entries are
// stamped with: SOURCE_DATE_EPOCH, else now (the zero time).
func (b *builder) createdTime() time.Time {
	if b.created == nil {
		return time.Time{}
	}
	return *b.created
}

func (b *builder) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	b.progress(e)
}

// stageResult is a built stage: its image so far and the snapshots of its
// layers, top first.
type stageResult struct {
	stage *recipe.Stage
	base  v1.Image
	chain []*chainLayer // bottom first
	// baseDigest is the base image's manifest digest ("" for scratch).
	baseDigest string
	// unknown is set in a dry run once a step would run: what the stage
	// holds after it is not known, so neither are later keys.
	unknown bool
	history []commit.Step
	env     []string
	workdir string
	user    string
}

// image assembles the final image from the last stage's result.
func (b *builder) image(s *stageResult) (v1.Image, error) {
	im := b.recipe.Image
	cfg := commit.Config{
		Env:           s.env,
		Entrypoint:    im.Entrypoint,
		EntrypointSet: im.Entrypoint != nil,
		Cmd:           im.Cmd,
		CmdSet:        im.Cmd != nil,
		WorkingDir:    s.workdir,
		User:          s.user,
		Labels:        im.Labels,
		Volumes:       im.Volumes,
		StopSignal:    im.StopSignal,
	}
	for _, p := range im.Expose {
		cfg.ExposedPorts = append(cfg.ExposedPorts, p.String())
	}
	img, err := commit.Image(s.base, commit.ImageOptions{
		Steps:       s.history,
		Config:      cfg,
		Created:     b.createdTime(),
		Annotations: im.Annotations,
		Platform:    platform(b.opts.Platform, s.stage.Platform),
	})
	if err != nil {
		return nil, fmt.Errorf("assembling the image: %w", err)
	}
	return img, nil
}

// output writes the image everywhere the options ask. Files and the
// daemon get the image with the layers kept under the state root read from
// there; pushes get it as built, so that registry layers can be mounted.
func (b *builder) output(ctx context.Context, img v1.Image) error {
	local := commit.WithLocalBlobs(img, b.blobs)
	for _, out := range b.opts.Outputs {
		start := time.Now()
		var err error
		switch out.Type {
		case OutputOCI:
			err = commit.WriteOCILayout(ctx, out.Dest, local, b.opts.Tags)
		case OutputDocker:
			err = commit.WriteDockerArchive(ctx, out.Dest, local, b.opts.Tags)
		case OutputRegistry:
			if !b.opts.Push { // --push pushes below, once
				err = b.push(ctx, img)
			}
		default:
			err = fmt.Errorf("unknown output type %q", out.Type)
		}
		if err != nil {
			return fmt.Errorf("writing output %s: %w", out, err)
		}
		b.emit(Event{Kind: EventInfo, Text: fmt.Sprintf("wrote %s in %s", out, time.Since(start).Round(time.Millisecond))})
	}
	if b.opts.Push {
		if err := b.push(ctx, img); err != nil {
			return err
		}
	}
	if b.opts.Load {
		start := time.Now()
		if err := commit.Load(ctx, local, b.opts.Tags); err != nil {
			return fmt.Errorf("loading into the docker daemon: %w", err)
		}
		b.emit(Event{Kind: EventInfo, Text: fmt.Sprintf("loaded into the docker daemon in %s", time.Since(start).Round(time.Millisecond))})
	}
	return nil
}

func (b *builder) push(ctx context.Context, img v1.Image) error {
	if len(b.opts.Tags) == 0 {
		return errors.New("nothing to push to: give --tag")
	}
	start := time.Now()
	if _, err := commit.Push(ctx, img, b.opts.Tags, commit.PushOptions{Insecure: b.opts.InsecureRegistries}); err != nil {
		return fmt.Errorf("pushing: %w", err)
	}
	b.emit(Event{Kind: EventInfo, Text: fmt.Sprintf("pushed %s in %s", strings.Join(b.opts.Tags, ", "), time.Since(start).Round(time.Millisecond))})
	return nil
}

// diffAndCommit diffs the upper dir over lowers into a compressed layer blob
// and, if the step changed anything, makes the upper dir a snapshot.
// It returns a nil layer when nothing changed.
func (b *builder) diffAndCommit(ctx context.Context, up *layers.Upper, lowers []string) (*commit.Layer, layers.DiffStats, string, error) {
	pr, pw := io.Pipe()
	statsc := make(chan layers.DiffStats, 1)
	errc := make(chan error, 1)
	go func() {
		st, err := layers.Diff(ctx, pw, layers.DiffOptions{Upper: up.Dir, Lowers: lowers, Epoch: b.created})
		pw.CloseWithError(err)
		statsc <- st
		errc <- err
	}()
	layer, werr := commit.WriteLayer(ctx, pr, b.blobs, commit.Compression(b.opts.Compression))
	pr.CloseWithError(io.ErrClosedPipe) // unblock the differ if WriteLayer stopped early
	stats, derr := <-statsc, <-errc
	if derr != nil {
		return nil, stats, "", fmt.Errorf("diffing the step's changes: %w", derr)
	}
	if werr != nil {
		return nil, stats, "", fmt.Errorf("writing the layer: %w", werr)
	}
	if stats.Added+stats.Modified+stats.Deleted == 0 {
		return nil, stats, "", nil
	}
	diffID, err := layer.DiffID()
	if err != nil {
		return nil, stats, "", err
	}
	dir, err := b.store.Commit(up, toDigest(diffID))
	if err != nil {
		return nil, stats, "", fmt.Errorf("storing the snapshot: %w", err)
	}
	return layer, stats, dir, nil
}

func toDigest(h v1.Hash) digest.Digest { return digest.Digest(h.String()) }

func toDigestString(s string) digest.Digest { return digest.Digest(s) }
