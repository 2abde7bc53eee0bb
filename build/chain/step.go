package chain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"

	"github.com/stratabuild/strata/commit"
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
	// DiffID is "sha256:…"; "" when the step changed no file, or when
	// it is not known yet (a Trim: see Trimmed).
	DiffID string
	Stats  layers.DiffStats
	// Diff is the time the upper dir's diff into a hashed tar (or its
	// trim) took; Commit, which includes it, ends when the snapshot is
	// stored (or the trimmed upper dir kept).
	Diff, Commit time.Duration

	dir    string
	lowers []string
	epoch  *time.Time
	// up is a trimmed upper dir not yet the snapshot of its diffID, and
	// layer its place in the chain; below are the layers it was made
	// over, whose dirs Tar reads (a trimmed one may be published
	// meanwhile); see Trim.
	up    *layers.Upper
	layer *Layer
	below []*Layer
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

// Trim is Commit for a layer whose diffID no step needs before the layer
// is compressed (no cache lookup follows: --no-cache, or a cache that
// cannot hit): it only trims the upper dir to the layer, reading no file
// content to hash, and keeps it as the snapshot the next steps run on,
// under its temp name. below is the chain the step ran on (r's lowers).
// The compressor learns the diffID from Tar, and Publish then makes the
// dir the snapshot of that diffID. When nothing changed, the upper dir is
// removed and Trimmed is false.
func (w *Workspace) Trim(ctx context.Context, r *Ran, epoch *time.Time, below []*Layer) (*Made, error) {
	start := time.Now()
	m := &Made{lowers: r.lowers, epoch: epoch, below: slices.Clip(below)}
	stats, err := layers.Diff(ctx, nil, layers.DiffOptions{Upper: r.up.Dir, Lowers: r.lowers, Epoch: epoch, TrimOnly: true})
	m.Diff = time.Since(start)
	m.Commit = m.Diff
	if err != nil || stats.Empty() {
		r.discard()
		if err != nil {
			return nil, fmt.Errorf("diffing the step's changes: %w", err)
		}
		return m, nil
	}
	m.Stats, m.dir, m.up = stats, r.up.Dir, r.up
	return m, nil
}

// Trimmed reports whether m is a Trim's layer: its diffID is learned
// when it is compressed, and Publish has yet to store its snapshot.
func (m *Made) Trimmed() bool { return m.up != nil }

// Tar writes the layer's tar again, from its snapshot: the same bytes as
// the diff that made it (Diff of a trimmed upper dir over the same
// lowers), which the compressor checks.
func (m *Made) Tar(ctx context.Context, w io.Writer) error {
	lowers := m.lowers
	if m.below != nil { // where the layers below are now
		lowers = make([]string, len(m.below))
		for i, l := range m.below {
			l.mu.Lock()
			lowers[len(m.below)-1-i] = l.dir
			l.mu.Unlock()
		}
	}
	_, err := layers.Diff(ctx, w, layers.DiffOptions{Upper: m.dir, Lowers: lowers, Epoch: m.epoch, KeepUpper: true})
	return err
}

// Layer is the made layer in a chain, its snapshot made, l what an image
// lists for it: for a Trim's, the *commit.Pending that learns its diffID.
func (m *Made) Layer(l v1.Layer) *Layer {
	m.layer = &Layer{DiffID: m.DiffID, Layer: l, dir: m.dir}
	return m.layer
}

// Publish ends a Trim's layer, whose blob is blob (nil: not made), once
// nothing reads its dir under its temp name any more: no step runs (the
// build's steps are done) and no layer's Tar runs (their tars are diffed
// again over it; a Tar that starts later reads where it is then). The
// trimmed upper dir becomes the snapshot of the layer's diffID
// (Store.Commit: renamed, or removed if the store has that snapshot
// already). A dir that cannot be stored, or has no blob, is removed by
// the last call (last): before it, layers over it may still be diffed
// over it, and it stays. It does nothing for other layers, or once done.
func (m *Made) Publish(w *Workspace, blob *commit.Layer, last bool) error {
	if m.up == nil {
		return nil
	}
	err := errors.New("its blob was not made")
	if blob != nil {
		var d v1.Hash
		var dir string
		if d, err = blob.DiffID(); err == nil {
			dir, err = w.Store.Commit(m.up, digest.Digest(d.String()))
		}
		if dir != "" { // stored, whatever else failed
			m.up = nil
			m.layer.mu.Lock()
			defer m.layer.mu.Unlock()
			m.layer.dir = dir
			return err
		}
	}
	if !last {
		return err
	}
	up := m.up
	m.up = nil
	if blob == nil {
		return up.Discard()
	}
	return errors.Join(err, up.Discard())
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
	defer func() {
		// Empty once unmounted; never RemoveAll a mount point. One left
		// here is reaped only once this process is gone: say so.
		if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
			w.Log.Warn("removing a step's mount point", "target", target, "err", err)
		}
	}()
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
