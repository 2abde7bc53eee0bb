package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/build/plan"
	"github.com/stratabuild/strata/build/sandbox"
	"github.com/stratabuild/strata/internal/fscopy"
	"github.com/stratabuild/strata/internal/stateroot"
	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/recipe"
)

// made is the layer a step made, not yet compressed: its record as the
// step reports it (diffID and counts; no digest or size yet), its
// snapshot and the snapshots it was made over.
type made struct {
	rec    *cache.Layer
	dir    string
	lowers []string
}

// make runs a step that may change files: mount the stage's snapshots
// with a fresh upper dir, run or copy, unmount, diff, store the snapshot.
// It returns nil when the step changed no file.
func (e *executor) make(ctx context.Context, sp *plan.Stage, res *stageResult, s *plan.Step, ev Event, t *Timings) (*made, error) {
	lowers, unpack, err := e.lowers(ctx, sp.Recipe.Name, res.chain)
	t.Unpack += unpack
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Pos, err)
	}
	up, err := e.store.NewUpper(ctx)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			if err := up.Discard(); err != nil {
				e.log.Warn("removing the step's upper dir", "dir", up.Dir, "err", err)
			}
		}
	}()
	start := time.Now()
	err = e.mounted(ctx, lowers, up, "step", func(rootfs string) error {
		defer func() { t.Process = time.Since(start) }()
		switch s.Recipe.Kind {
		case recipe.RunStep:
			return e.run(ctx, s, rootfs, ev)
		case recipe.FileStep:
			return e.file(ctx, s, rootfs)
		}
		return e.copy(ctx, s, rootfs)
	})
	if err != nil {
		return nil, err
	}
	start = time.Now()
	rec, err := e.diff(ctx, up, lowers, t)
	if err != nil || rec == nil {
		t.Commit = time.Since(start)
		if err != nil {
			err = fmt.Errorf("%s: %w", s.Pos, err)
		}
		return nil, err
	}
	dir, err := e.store.Commit(up, toDigest(rec.DiffID))
	t.Commit = time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("%s: storing the snapshot: %w", s.Pos, err)
	}
	committed = true
	return &made{rec: rec, dir: dir, lowers: lowers}, nil
}

// mounted mounts lowers with the upper dir up on a fresh mount point under
// the state root, calls f with it and unmounts, on every path.
func (e *executor) mounted(ctx context.Context, lowers []string, up *layers.Upper, kind string, f func(rootfs string) error) error {
	target, err := stateroot.MkdirOwned(e.root.Mounts(), kind)
	if err != nil {
		return err
	}
	defer os.Remove(target) // empty once unmounted; never RemoveAll a mount point
	m, err := e.mounter.Mount(ctx, layers.MountOptions{Lowers: lowers, Upper: up.Dir, Work: up.Work, Target: target})
	if err != nil {
		return fmt.Errorf("mounting the step's rootfs: %w", err)
	}
	defer func() {
		// Unmount is idempotent: after the unmount below this is a no-op;
		// on an error path it is the one that unmounts.
		if err := m.Unmount(); err != nil {
			e.log.Warn("unmounting", "target", target, "err", err)
		}
	}()
	if err := f(m.Target()); err != nil {
		return err
	}
	if err := m.Unmount(); err != nil {
		return fmt.Errorf("unmounting the step's rootfs: %w", err)
	}
	return nil
}

// diff diffs the upper dir over lowers, trimming it to the layer, and
// hashes the tar: the diffID the next step's cache key chains on. It
// returns the layer's record as far as it is known (no digest or size
// yet), or nil when nothing changed. The tar is written again from the
// snapshot to be compressed (see tar).
func (e *executor) diff(ctx context.Context, up *layers.Upper, lowers []string, t *Timings) (*cache.Layer, error) {
	start := time.Now()
	h := sha256.New()
	stats, err := layers.Diff(ctx, h, layers.DiffOptions{Upper: up.Dir, Lowers: lowers, Epoch: e.epoch})
	t.Diff = time.Since(start)
	if err != nil {
		return nil, fmt.Errorf("diffing the step's changes: %w", err)
	}
	if stats.Empty() {
		return nil, nil
	}
	mt, err := e.o.Compression.MediaType()
	if err != nil {
		return nil, err
	}
	return &cache.Layer{DiffID: "sha256:" + hex.EncodeToString(h.Sum(nil)), MediaType: string(mt),
		Added: stats.Added, Modified: stats.Modified, Deleted: stats.Deleted}, nil
}

// tar writes the layer m's tar again, from its snapshot: the same bytes
// as the diff that made it (Diff of a trimmed upper dir over the same
// lowers), which the compressor checks.
func (e *executor) tar(m *made) func(ctx context.Context, w io.Writer) error {
	return func(ctx context.Context, w io.Writer) error {
		_, err := layers.Diff(ctx, w, layers.DiffOptions{Upper: m.dir, Lowers: m.lowers, Epoch: e.epoch, KeepUpper: true})
		return err
	}
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

func (e *executor) run(ctx context.Context, s *plan.Step, rootfs string, ev Event) error {
	r := s.Recipe.Run
	out := sandbox.NewLines(tailLines, e.redactions(s), func(line string) {
		ev.Text = line
		e.event(ev, EventOutput)
	})
	mounts, cleanup, err := e.mounts(s)
	if err != nil {
		return err
	}
	defer cleanup()
	id := stateroot.OwnedName("strata")
	err = e.runner.Run(ctx, sandbox.Options{
		ID: id, Hostname: id[strings.LastIndexByte(id, '-')+1:], Rootfs: rootfs,
		Args: r.Argv(), Env: s.State.Environ(r.Env...), Cwd: s.State.Cwd(), User: s.State.User,
		Network: string(r.Network), Mounts: mounts, Stdout: out, Stderr: out,
		Runtime: e.o.Runtime, StateDir: e.root.Runtime(), Log: e.log,
		PidsLimit: e.o.PidsLimit, MemoryLimit: e.o.MemoryLimit,
	})
	var exit *sandbox.ExitError
	if errors.As(err, &exit) {
		return &StepError{Pos: s.Pos, Step: s.Recipe.Index + 1, Name: s.Recipe.Name,
			Command: strings.Join(r.Argv(), " "), Status: exit.Status, Tail: out.Tail()}
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
		o.ModTime = e.epoch
	}
	if err := owner(&o, rootfs, c.Owner); err != nil {
		return fmt.Errorf("%s: copy %w", s.Pos, err)
	}
	if s.From == nil {
		o.Policy, o.Ignore = fscopy.FromContext, e.plan.Ignore
		if _, err := fscopy.Copy(ctx, e.context, c.Sources, rootfs, s.Dest, o); err != nil {
			return fmt.Errorf("%s: %w", s.Pos, err)
		}
		return nil
	}
	chain, err := e.sourceChain(ctx, s.From)
	if err != nil {
		return fmt.Errorf("%s: copy from %s: %w", s.Pos, c.From.Ref, err)
	}
	lowers, _, err := e.lowers(ctx, "", chain)
	if err != nil {
		return fmt.Errorf("%s: copy from %s: %w", s.Pos, c.From.Ref, err)
	}
	if len(lowers) == 0 {
		return fmt.Errorf("%s: copy from %s: it has no files", s.Pos, c.From.Ref)
	}
	// A read-only view of the source: an overlay whose throwaway upper
	// dir nothing writes to.
	up, err := e.store.NewUpper(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err := up.Discard(); err != nil {
			e.log.Warn("removing a copy source's upper dir", "dir", up.Dir, "err", err)
		}
	}()
	return e.mounted(ctx, lowers, up, "from", func(src string) error {
		if _, err := fscopy.Copy(ctx, src, c.Sources, rootfs, s.Dest, o); err != nil {
			return fmt.Errorf("%s: copy from %s: %w", s.Pos, c.From.Ref, err)
		}
		return nil
	})
}

// file writes a file step's content.
func (e *executor) file(ctx context.Context, s *plan.Step, rootfs string) error {
	f := s.Recipe.File
	mode := f.Perm()
	o := fscopy.Options{Mode: &mode, ModTime: e.epoch}
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
func (e *executor) sourceChain(ctx context.Context, from *plan.CopySource) ([]*chainLayer, error) {
	if from.Stage < 0 {
		return imageChain(from.Image, "image "+from.Ref)
	}
	src, err := e.waitStage(ctx, from.Stage)
	if err != nil {
		return nil, err
	}
	return src.chain, nil
}
