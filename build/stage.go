package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/build/sandbox"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/recipe"
)

// stage builds one stage on top of its base.
func (b *builder) stage(ctx context.Context, st *recipe.Stage) (*stageResult, error) {
	res, err := b.base(ctx, st)
	if err != nil {
		return nil, err
	}
	if len(st.Unresolved) > 0 {
		if st, err = st.Expand(res.env); err != nil {
			return nil, err
		}
	}
	res.stage = st
	res.env = mergeEnv(res.env, st.Env)
	if st.Workdir != "" {
		res.workdir = st.Workdir
	}
	if st.User != "" {
		res.user = st.User
	}
	for _, step := range st.Steps {
		if err := b.step(ctx, res, step); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// base resolves a stage's from: into an image and the snapshots of its layers.
func (b *builder) base(ctx context.Context, st *recipe.Stage) (*stageResult, error) {
	var img v1.Image
	switch st.From.Kind {
	case recipe.KindStage:
		prev, err := b.waitStage(ctx, st.From.Stage)
		if err != nil {
			return nil, err
		}
		// A stage built on another continues it: same layers, same state.
		res := *prev
		if b.opts.DryRun && prev.unknown {
			res.unknown = true
		}
		res.history = append([]commit.Step(nil), prev.history...)
		res.chain = append([]*chainLayer(nil), prev.chain...)
		return &res, nil
	case recipe.KindScratch:
		img = empty.Image
	default:
		start := time.Now()
		var err error
		img, err = b.pull(ctx, st.From, st.Platform)
		if err != nil {
			return nil, fmt.Errorf("%s: pulling base %s: %w", st.From.Pos, st.From.Ref, err)
		}
		b.emit(Event{Kind: EventInfo, Stage: st.Name, Text: fmt.Sprintf("base %s resolved in %s", st.From.Ref, time.Since(start).Round(time.Millisecond))})
	}
	res := &stageResult{base: img}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the config of base %s: %w", st.From.Ref, err)
	}
	res.env = append([]string(nil), cf.Config.Env...)
	res.workdir = cf.Config.WorkingDir
	res.user = cf.Config.User
	if res.chain, err = imageChain(img); err != nil {
		return nil, fmt.Errorf("%s: base %s: %w", st.From.Pos, st.From.Ref, err)
	}
	if st.From.Kind != recipe.KindScratch {
		d, err := img.Digest()
		if err != nil {
			return nil, fmt.Errorf("%s: base %s: %w", st.From.Pos, st.From.Ref, err)
		}
		res.baseDigest = d.String()
	}
	return res, nil
}

// pull resolves an image base (registry, oci-layout, docker-archive).
func (b *builder) pull(ctx context.Context, base recipe.Base, p recipe.Platform) (v1.Image, error) {
	return commit.Pull(ctx, pullRef(base), commit.PullOptions{
		Platform: platform(b.opts.Platform, p),
		Insecure: b.opts.InsecureRegistries,
	})
}

func pullRef(base recipe.Base) string {
	switch base.Kind {
	case recipe.KindOCILayout:
		ref := "oci-layout://" + base.Path
		if base.Digest != "" {
			return ref + "@" + base.Digest
		}
		if base.Tag != "" {
			return ref + ":" + base.Tag
		}
		return ref
	case recipe.KindDockerArchive:
		return "docker-archive://" + base.Path
	}
	return base.Ref
}

// platform picks the stage's platform, else --platform, else the host's (nil).
func platform(flag string, p recipe.Platform) *v1.Platform {
	s := p.String()
	if s == "" {
		s = flag
	}
	if s == "" {
		return nil
	}
	parts := strings.Split(s, "/")
	pl := &v1.Platform{OS: parts[0]}
	if len(parts) > 1 {
		pl.Architecture = parts[1]
	}
	if len(parts) > 2 {
		pl.Variant = parts[2]
	}
	return pl
}

// mergeEnv sets vars over env (a KEY=VALUE list), keeping order: a
// variable already present is replaced in place, a new one appended.
func mergeEnv(env []string, vars []recipe.EnvVar) []string {
	out := append([]string(nil), env...)
	for _, v := range vars {
		replaced := false
		for i, kv := range out {
			if strings.SplitN(kv, "=", 2)[0] == v.Name {
				out[i] = v.String()
				replaced = true
				break
			}
		}
		if !replaced {
			out = append(out, v.String())
		}
	}
	return out
}

// stepPos is a step's FILE:LINE, as messages and history show it.
func stepPos(p recipe.Pos) string {
	return recipe.Pos{File: p.File, Line: p.Line}.String()
}

// describe is the one-line summary of a step for progress and history.
func describe(step *recipe.Step) string {
	switch step.Kind {
	case recipe.RunStep:
		if step.Run.Exec {
			return fmt.Sprintf("%q", step.Run.Args)
		}
		return step.Run.Command
	case recipe.CopyStep:
		from := ""
		if step.Copy.From != nil {
			from = " from " + step.Copy.From.Ref
		}
		return strings.Join(step.Copy.Sources, " ") + from + " to " + step.Copy.To
	case recipe.EnvStep:
		parts := make([]string, len(step.Env))
		for i, e := range step.Env {
			parts[i] = e.String()
		}
		return strings.Join(parts, " ")
	case recipe.WorkdirStep:
		return step.Workdir
	case recipe.UserStep:
		return step.User
	}
	return ""
}

// step runs one step and records its history entry.
func (b *builder) step(ctx context.Context, res *stageResult, step *recipe.Step) error {
	if b.opts.DryRun {
		if step.Kind == recipe.RunStep || step.Kind == recipe.CopyStep {
			return b.dryStep(ctx, res, step)
		}
		applyConfigStep(res, step)
		return nil
	}
	st := res.stage
	ev := Event{Stage: st.Name, Step: step.Index + 1, Steps: len(st.Steps), Pos: stepPos(step.Pos), Action: step.Kind.String(), Text: describe(step)}
	if step.Name != "" {
		ev.Text = step.Name + ": " + ev.Text
	}
	start := time.Now()
	started := ev
	started.Kind = EventStart
	b.emit(started)

	var layer v1.Layer
	cached := false
	var info *LayerInfo
	var err error
	if step.Kind == recipe.RunStep || step.Kind == recipe.CopyStep {
		layer, info, cached, err = b.cachedStep(ctx, res, step, ev)
	} else {
		applyConfigStep(res, step)
	}
	ev.Duration = time.Since(start)
	if err != nil {
		ev.Kind = EventFailed
		ev.Error = err.Error()
		b.emit(ev)
		return err
	}
	ev.Kind = EventDone
	ev.Layer = info
	ev.Cached = cached
	b.emit(ev)

	h := commit.Step{CreatedBy: fmt.Sprintf("strata %s %s: %s", stepPos(step.Pos), step.Kind, describe(step)), Comment: step.Name}
	if layer != nil {
		h.Layer = layer
	}
	res.history = append(res.history, h)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.steps = append(b.steps, StepResult{Stage: st.Name, Pos: ev.Pos, Action: ev.Action, Cached: cached, Duration: ev.Duration, Layer: info})
	return nil
}

// applyConfigStep applies an env, workdir or user step: it changes only
// the config state.
func applyConfigStep(res *stageResult, step *recipe.Step) {
	switch step.Kind {
	case recipe.EnvStep:
		res.env = mergeEnv(res.env, step.Env)
	case recipe.WorkdirStep:
		res.workdir = step.Workdir
	case recipe.UserStep:
		res.user = step.User
	}
}

// fsStep runs a step that may change files: mount the stage's snapshots
// with a fresh upper dir, run or copy, unmount, diff, commit.
func (b *builder) fsStep(ctx context.Context, res *stageResult, step *recipe.Step, ev Event) (*commit.Layer, *LayerInfo, error) {
	lowers, err := b.lowers(ctx, res.stage.Name, res.chain)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", stepPos(step.Pos), err)
	}
	up, err := b.store.NewUpper(ctx)
	if err != nil {
		return nil, nil, err
	}
	committed := false
	defer func() {
		if !committed {
			if err := up.Discard(); err != nil {
				b.log.Warn("removing the step's upper dir", "dir", up.Dir, "err", err)
			}
		}
	}()
	target, err := os.MkdirTemp(b.mnt, fmt.Sprintf("step-%d-", os.Getpid()))
	if err != nil {
		return nil, nil, err
	}
	defer os.Remove(target)
	m, err := b.mounter.Mount(ctx, layers.MountOptions{Lowers: lowers, Upper: up.Dir, Work: up.Work, Target: target})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: mounting the step's rootfs: %w", stepPos(step.Pos), err)
	}
	defer func() {
		// Unmount is idempotent: after the explicit unmount below this is
		// a no-op; on an error path it is the one that unmounts.
		if err := m.Unmount(); err != nil {
			b.log.Warn("unmounting the step's rootfs", "target", target, "err", err)
		}
	}()

	if step.Kind == recipe.RunStep {
		err = b.run(ctx, res, step, m.Target(), ev)
	} else {
		err = b.copy(ctx, res, step, m.Target())
	}
	if err != nil {
		return nil, nil, err
	}
	if err := m.Unmount(); err != nil {
		return nil, nil, fmt.Errorf("%s: unmounting the step's rootfs: %w", stepPos(step.Pos), err)
	}
	layer, stats, dir, err := b.diffAndCommit(ctx, up, lowers)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", stepPos(step.Pos), err)
	}
	if layer == nil {
		return nil, nil, nil
	}
	committed = true
	diffID, _ := layer.DiffID()
	res.chain = append(res.chain, &chainLayer{diffID: diffID.String(), layer: layer, dir: dir})
	info := &LayerInfo{Added: stats.Added, Modified: stats.Modified, Deleted: stats.Deleted}
	dg, _ := layer.Digest()
	info.Digest, info.DiffID = dg.String(), diffID.String()
	info.Size, _ = layer.Size()
	return layer, info, nil
}

// StepError is a run step that exited non-zero: where it is in the recipe,
// what it ran, how it ended and the last lines it printed.
type StepError struct {
	Pos     string // FILE:LINE
	Step    int    // 1-based
	Name    string
	Command string
	Status  int
	Tail    []string
}

func (e *StepError) Error() string {
	var b strings.Builder
	name := ""
	if e.Name != "" {
		name = fmt.Sprintf(" %q", e.Name)
	}
	fmt.Fprintf(&b, "%s: step %d%s: run exited with status %d\n  command: %s", e.Pos, e.Step, name, e.Status, e.Command)
	if len(e.Tail) > 0 {
		b.WriteString("\n  last lines of output:")
		for _, l := range e.Tail {
			b.WriteString("\n    " + l)
		}
	}
	return b.String()
}

const tailLines = 20

func (b *builder) run(ctx context.Context, res *stageResult, step *recipe.Step, rootfs string, ev Event) error {
	r := step.Run
	out := newLineWriter(tailLines, b.redactions(step), func(line string) {
		e := ev
		e.Kind, e.Text, e.Time = EventOutput, line, time.Time{}
		b.emit(e)
	})
	mounts, cleanup, err := b.mounts(step)
	if err != nil {
		return err
	}
	defer cleanup()
	cwd := res.workdir
	if cwd == "" {
		cwd = "/"
	}
	id := ownedName("strata")
	err = b.runner.Run(ctx, sandbox.Options{
		ID:       id,
		Hostname: id[strings.LastIndexByte(id, '-')+1:],
		Rootfs:   rootfs,
		Args:     r.Argv(),
		Env:      mergeEnv(res.env, r.Env),
		Cwd:      cwd,
		User:     res.user,
		Network:  string(r.Network),
		Mounts:   mounts,
		Stdout:   out,
		Stderr:   out,
		Runtime:  b.opts.Runtime,
		StateDir: b.state,
		Log:      b.log,
	})
	var exit *sandbox.ExitError
	if errors.As(err, &exit) {
		return &StepError{Pos: stepPos(step.Pos), Step: step.Index + 1, Name: step.Name,
			Command: strings.Join(r.Argv(), " "), Status: exit.Status, Tail: out.Tail()}
	}
	if err != nil {
		return fmt.Errorf("%s: running step %d: %w", stepPos(step.Pos), step.Index+1, err)
	}
	out.Tail()
	return nil
}

func (b *builder) copy(ctx context.Context, res *stageResult, step *recipe.Step, rootfs string) error {
	c := step.Copy
	spec := copySpec{Sources: c.Sources, Dest: c.To, Mode: c.Mode, ModTime: b.created}
	if c.Owner != nil {
		// Names are those of the stage copied into, as docker does.
		uid, gid, err := sandbox.LookupOwner(rootfs, c.Owner.String())
		if err != nil {
			return fmt.Errorf("%s: copy owner %s: %w", stepPos(step.Pos), c.Owner, err)
		}
		spec.UID, spec.GID = uid, gid
	}
	if c.From != nil {
		return b.copyFrom(ctx, res, step, rootfs, spec)
	}
	ignore, err := loadIgnore(b.recipe.Context)
	if err != nil {
		return err
	}
	if _, err := copyFromContext(ctx, b.recipe.Context, ignore, rootfs, spec); err != nil {
		return fmt.Errorf("%s: %w", stepPos(step.Pos), err)
	}
	return nil
}
