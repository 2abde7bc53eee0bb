package chain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/stratabuild/strata/internal/stateroot"
	"github.com/stratabuild/strata/layers"
)

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

// Overlay is the real Mounter.
type Overlay struct{}

// Mount mounts an overlay with layers.Mount.
func (Overlay) Mount(ctx context.Context, o layers.MountOptions) (Mounted, error) {
	return layers.Mount(ctx, o)
}

// Ran is a step's upper dir once its process has exited, for Commit.
type Ran struct {
	up     *layers.Upper
	lowers []string
	log    *slog.Logger
	// Process is the step's time from mount to exit.
	Process time.Duration
}

// Run mounts lowers with a fresh upper dir, calls f with the mount point
// and unmounts, on every path. On an error the upper dir is gone.
func (w *Workspace) Run(ctx context.Context, lowers []string, f func(rootfs string) error) (*Ran, error) {
	up, err := w.Store.NewUpper(ctx)
	if err != nil {
		return nil, err
	}
	r := &Ran{up: up, lowers: lowers, log: w.Log}
	start := time.Now()
	err = w.mounted(ctx, lowers, up, "step", func(rootfs string) error {
		defer func() { r.Process = time.Since(start) }()
		return f(rootfs)
	})
	if err != nil {
		r.discard()
		return nil, err
	}
	return r, nil
}

// discard removes the upper dir.
func (r *Ran) discard() {
	if err := r.up.Discard(); err != nil {
		r.log.Warn("removing the step's upper dir", "dir", r.up.Dir, "err", err)
	}
}

// Made is the layer a step made, not yet compressed: its diffID and
// counts, its snapshot and the snapshots it was made over.
type Made struct {
	DiffID string // "sha256:…"; "" when the step changed no file
	Stats  layers.DiffStats
	// Diff is the time the upper dir's diff into a hashed tar took;
	// Commit, which includes it, ends when the snapshot is stored.
	Diff, Commit time.Duration

	dir    string
	lowers []string
	epoch  *time.Time
}

// Commit diffs the upper dir over the lowers it ran on, trimming it to the
// layer, hashes the tar — the diffID the next step's cache key chains on —
// and stores the upper dir as the layer's snapshot. Layer times are
// clamped to epoch (nil: none). When nothing changed, the upper dir is
// removed and the Made has no DiffID.
func (w *Workspace) Commit(ctx context.Context, r *Ran, epoch *time.Time) (*Made, error) {
	start := time.Now()
	m := &Made{lowers: r.lowers, epoch: epoch}
	h := sha256.New()
	stats, err := layers.Diff(ctx, h, layers.DiffOptions{Upper: r.up.Dir, Lowers: r.lowers, Epoch: epoch})
	m.Diff = time.Since(start)
	if err != nil || stats.Empty() {
		m.Commit = time.Since(start)
		r.discard()
		if err != nil {
			return nil, fmt.Errorf("diffing the step's changes: %w", err)
		}
		return m, nil
	}
	m.DiffID, m.Stats = "sha256:"+hex.EncodeToString(h.Sum(nil)), stats
	m.dir, err = w.Store.Commit(r.up, digest.Digest(m.DiffID))
	m.Commit = time.Since(start)
	if err != nil {
		r.discard()
		return nil, fmt.Errorf("storing the snapshot: %w", err)
	}
	return m, nil
}

// Tar writes the layer's tar again, from its snapshot: the same bytes as
// the diff that made it (Diff of a trimmed upper dir over the same
// lowers), which the compressor checks.
func (m *Made) Tar(ctx context.Context, w io.Writer) error {
	_, err := layers.Diff(ctx, w, layers.DiffOptions{Upper: m.dir, Lowers: m.lowers, Epoch: m.epoch, KeepUpper: true})
	return err
}

// Layer is the made layer in a chain, its snapshot made, l what an image
// lists for it.
func (m *Made) Layer(l v1.Layer) *Layer {
	return &Layer{DiffID: m.DiffID, Layer: l, dir: m.dir}
}

// View calls f with a read-only view of lowers: an overlay whose
// throwaway upper dir nothing writes to.
func (w *Workspace) View(ctx context.Context, lowers []string, f func(dir string) error) error {
	up, err := w.Store.NewUpper(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err := up.Discard(); err != nil {
			w.Log.Warn("removing a copy source's upper dir", "dir", up.Dir, "err", err)
		}
	}()
	return w.mounted(ctx, lowers, up, "from", f)
}

// mounted mounts lowers with the upper dir up on a fresh mount point under
// Mounts, calls f with it and unmounts, on every path.
func (w *Workspace) mounted(ctx context.Context, lowers []string, up *layers.Upper, kind string, f func(rootfs string) error) error {
	target, err := stateroot.MkdirOwned(w.Mounts, kind)
	if err != nil {
		return err
	}
	defer os.Remove(target) // empty once unmounted; never RemoveAll a mount point
	m, err := w.Mounter.Mount(ctx, layers.MountOptions{Lowers: lowers, Upper: up.Dir, Work: up.Work, Target: target})
	if err != nil {
		return fmt.Errorf("mounting the step's rootfs: %w", err)
	}
	defer func() {
		// Unmount is idempotent: after the unmount below this is a no-op;
		// on an error path it is the one that unmounts.
		if err := m.Unmount(); err != nil {
			w.Log.Warn("unmounting", "target", target, "err", err)
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
