package build

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stratabuild/strata/build/chain"
	"github.com/stratabuild/strata/build/plan"
	"github.com/stratabuild/strata/build/sandbox"
	"github.com/stratabuild/strata/internal/fscopy"
	"github.com/stratabuild/strata/internal/stateroot"
	"github.com/stratabuild/strata/recipe"
)

// make runs a step that may change files on the stage's snapshots, and
// commits what it changed (see chain.Workspace). It returns a Made without
// a DiffID when the step changed no file.
func (e *executor) make(ctx context.Context, sp *plan.Stage, res *stageResult, s *plan.Step, ev Event, t *Timings) (*chain.Made, error) {
	if s.From != nil && s.From.Stage >= 0 {
		// A copy from a stage still being built waits for it here, said
		// so, not in its run time.
		if err := e.awaitStage(ctx, s.From.Stage, ev, s.Recipe.Copy.From.Ref); err != nil {
			return nil, err
		}
	}
	lowers, unpack, err := e.lowers(ctx, sp.Recipe.Name, res.chain)
	t.Unpack += unpack
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Pos, err)
	}
	var stepErr error // the step's own, which names it
	ran, err := e.ws.Run(ctx, lowers, func(rootfs string) error {
		switch s.Recipe.Kind {
		case recipe.RunStep:
			stepErr = e.run(ctx, s, rootfs, ev)
		case recipe.FileStep:
			stepErr = e.file(ctx, s, rootfs)
		default:
			stepErr = e.copy(ctx, s, rootfs)
		}
		return stepErr
	})
	if err != nil && stepErr == nil { // setting the step's filesystem up, or down
		return nil, fmt.Errorf("%s: %w", s.Pos, err)
	}
	if err != nil {
		return nil, err
	}
	t.Process = ran.Process
	var m *chain.Made
	if e.learn {
		m, err = e.ws.Trim(ctx, ran, s.Epoch, res.chain)
	} else {
		m, err = e.ws.Commit(ctx, ran, s.Epoch)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Pos, err)
	}
	if m.DiffID != "" {
		// Stored before its entry is recorded: a build that ends before
		// that leaves it to be removed (cache.Local.RemoveUnrecorded).
		if err := e.cache.Local.NoteUnrecorded(m.DiffID); err != nil {
			e.log.Warn("noting a step's snapshot as unrecorded", "err", err)
		}
	}
	t.Diff, t.Commit = m.Diff, m.Commit
	return m, nil
}

// lowers makes the chain's missing snapshots and returns their dirs, top
// first, and the time spent unpacking.
func (e *executor) lowers(ctx context.Context, stage string, c []*chain.Layer) ([]string, time.Duration, error) {
	dirs, made, took, err := e.ws.Lowers(ctx, c)
	if made > 0 {
		e.emit(Event{Kind: EventInfo, Time: time.Now(), Stage: stage, Text: fmt.Sprintf("%d layers unpacked in %s", made, took.Round(time.Millisecond))})
	}
	return dirs, took, err
}

// StepError is a run step that exited non-zero: where it is in the recipe,
// what it ran, how it ended and the last lines it printed.
type StepError struct {
	Pos     string // FILE:LINE
	Step    int    // 1-based
	Name    string
	Command string
	Status  int
	Tail    []string // as printed, shown through sandbox.PlainText
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
			// As progress shows them: no escape sequence or carriage
			// return of the step reaches the terminal.
			b.WriteString("\n    " + sandbox.PlainText(l))
		}
	}
	return b.String()
}

const tailLines = 20

func (e *executor) run(ctx context.Context, s *plan.Step, rootfs string, ev Event) error {
	r := s.Recipe.Run
	out := sandbox.NewLines(tailLines, e.redactions(s), func(line string) {
		ev.Text = line
		e.event(ev, EventOutput)
	})
	mounts, cleanup, err := e.mounts(ctx, s)
	if err != nil {
		return err
	}
	defer cleanup()
	id := stateroot.OwnedName("strata")
	err = e.runner.Run(ctx, sandbox.Options{
		ID: id, Hostname: id[strings.LastIndexByte(id, '-')+1:], Rootfs: rootfs,
		Args: s.Def.Argv, Env: s.State.Environ(r.Env...), Cwd: s.State.Cwd(), User: s.State.User,
		Network: string(r.Network), Mounts: mounts, Stdout: out, Stderr: out,
		Runtime: e.o.Runtime, StateDir: e.root.Runtime(), Log: e.log,
		PidsLimit: e.o.PidsLimit, MemoryLimit: e.o.MemoryLimit,
	})
	var exit *sandbox.ExitError
	if errors.As(err, &exit) {
		return &StepError{Pos: s.Pos, Step: s.Recipe.Index + 1, Name: s.Recipe.Name,
			Command: strings.Join(s.Def.Argv, " "), Status: exit.Status, Tail: out.Tail()}
	}
	if err != nil {
		return fmt.Errorf("%s: running step %d: %w", s.Pos, s.Recipe.Index+1, err)
	}
	out.Tail()
	return nil
}

// copy runs a copy step: from the build context, or from a stage's or an
// image's filesystem, mounted read-only for the copy.
func (e *executor) copy(ctx context.Context, s *plan.Step, rootfs string) error {
	c := s.Recipe.Copy
	// Context files get the epoch as mtime, whatever their checkout's
	// (the cache key ignores mtimes, so must the layer); files from a
	// stage or image keep theirs, clamped to the epoch when committed.
	o := fscopy.Options{Mode: c.Mode}
	if s.From == nil {
		o.ModTime = s.Epoch
	}
	if err := owner(&o, rootfs, c.Owner); err != nil {
		return fmt.Errorf("%s: copy %w", s.Pos, err)
	}
	if s.From == nil {
		o.Policy, o.Ignore = fscopy.FromContext, e.plan.Ignore
		if _, err := fscopy.Copy(ctx, e.context, c.Sources, rootfs, s.Dest, o); err != nil {
			return fmt.Errorf("%s: %w", s.Pos, err)
		}
		// The step's key was made of the files as they were hashed,
		// before the build ran: a layer of other files must not be
		// recorded under it.
		if err := contextUnchanged(e.context, e.plan.Ignore, s); err != nil {
			return fmt.Errorf("%s: the build context changed while the build ran (%w); build again", s.Pos, err)
		}
		return nil
	}
	src, err := e.sourceChain(ctx, s.From)
	if err != nil {
		return fmt.Errorf("%s: copy from %s: %w", s.Pos, c.From.Ref, err)
	}
	lowers, _, err := e.lowers(ctx, "", src)
	if err != nil {
		return fmt.Errorf("%s: copy from %s: %w", s.Pos, c.From.Ref, err)
	}
	if len(lowers) == 0 {
		return fmt.Errorf("%s: copy from %s: it has no files", s.Pos, c.From.Ref)
	}
	return e.ws.View(ctx, lowers, func(src string) error {
		if _, err := fscopy.Copy(ctx, src, c.Sources, rootfs, s.Dest, o); err != nil {
			return fmt.Errorf("%s: copy from %s: %w", s.Pos, c.From.Ref, err)
		}
		return nil
	})
}

// contextUnchanged checks that a context copy's inputs are the ones s's
// key was made of, as they were then: the same paths, each with the lstat
// it had before it was hashed.
func contextUnchanged(context string, ignore *fscopy.Ignore, s *plan.Step) error {
	now, _, err := fscopy.ContextInputs(context, ignore, s.Recipe.Copy.Sources, "") // its dest was checked when planned
	if err != nil {
		return err
	}
	for _, p := range now {
		if _, ok := s.Files[p]; !ok {
			return fmt.Errorf("%s appeared", p)
		}
	}
	if len(now) != len(s.Files) {
		for p := range s.Files {
			if !slices.Contains(now, p) {
				return fmt.Errorf("%s is gone", p)
			}
		}
	}
	return s.Seen.Unchanged(context, s.Files)
}

// file writes a file step's content.
func (e *executor) file(ctx context.Context, s *plan.Step, rootfs string) error {
	f := s.Recipe.File
	mode := f.Perm()
	o := fscopy.Options{Mode: &mode, ModTime: s.Epoch}
	if err := owner(&o, rootfs, f.Owner); err != nil {
		return fmt.Errorf("%s: file %w", s.Pos, err)
	}
	if err := fscopy.WriteFile(ctx, rootfs, s.Dest, []byte(f.Content), o); err != nil {
		return fmt.Errorf("%s: %w", s.Pos, err)
	}
	return nil
}

// owner sets o's owner to own (nil: o keeps 0:0), its names looked up in
// the rootfs the files go to, as docker does.
func owner(o *fscopy.Options, rootfs string, own *recipe.Owner) error {
	if own == nil {
		return nil
	}
	uid, gid, err := sandbox.LookupOwner(rootfs, own.String())
	if err != nil {
		return fmt.Errorf("owner %s: %w", own, err)
	}
	o.UID, o.GID, o.OwnerSet = uid, gid, true
	return nil
}

// sourceChain is the layer chain of a copy's source stage or image.
func (e *executor) sourceChain(ctx context.Context, from *plan.CopySource) ([]*chain.Layer, error) {
	if from.Stage < 0 {
		return e.chainOf(from.Image, "image "+from.Ref)
	}
	src, err := e.waitStage(ctx, from.Stage)
	if err != nil {
		return nil, err
	}
	return src.chain, nil
}
