package build

import (
	"context"
	"fmt"
	"os"

	"github.com/stratabuild/strata/internal/fscopy"
	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/recipe"
)

// copyFrom copies from another stage's or an image's filesystem, keeping
// what the files carry (owners, modes, xattrs, capabilities, hardlinks)
// unless the step sets owner or mode.
func (b *builder) copyFrom(ctx context.Context, res *stageResult, step *recipe.Step, rootfs string, spec copySpec) error {
	from := step.Copy.From
	lowers, err := b.sourceLowers(ctx, res, from)
	if err != nil {
		return fmt.Errorf("%s: copy from %s: %w", stepPos(step.Pos), from.Ref, err)
	}
	if len(lowers) == 0 {
		return fmt.Errorf("%s: copy from %s: it has no files (scratch)", stepPos(step.Pos), from.Ref)
	}
	// A read-only view of the source: an overlay with a throwaway upper
	// dir that nothing writes to.
	up, err := b.store.NewUpper(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err := up.Discard(); err != nil {
			b.log.Warn("removing a copy source's upper dir", "dir", up.Dir, "err", err)
		}
	}()
	target, err := os.MkdirTemp(b.mnt, fmt.Sprintf("from-%d-", os.Getpid()))
	if err != nil {
		return err
	}
	defer os.Remove(target)
	m, err := b.mounter.Mount(ctx, layers.MountOptions{Lowers: lowers, Upper: up.Dir, Work: up.Work, Target: target})
	if err != nil {
		return fmt.Errorf("%s: mounting %s: %w", stepPos(step.Pos), from.Ref, err)
	}
	defer func() {
		if err := m.Unmount(); err != nil {
			b.log.Warn("unmounting a copy source", "target", target, "err", err)
		}
	}()
	o := fscopy.Options{Mode: spec.Mode, ModTime: spec.ModTime}
	if step.Copy.Owner != nil {
		o.UID, o.GID, o.OwnerSet = spec.UID, spec.GID, true
	}
	if _, err := fscopy.Copy(ctx, m.Target(), step.Copy.Sources, rootfs, step.Copy.To, o); err != nil {
		return fmt.Errorf("%s: copy from %s: %w", stepPos(step.Pos), from.Ref, err)
	}
	return nil
}

// sourceLowers returns the snapshots, top first, of a copy's from: a
// stage of this build (built before this one starts) or an image.
func (b *builder) sourceLowers(ctx context.Context, res *stageResult, from *recipe.Base) ([]string, error) {
	switch from.Kind {
	case recipe.KindStage:
		src, err := b.waitStage(ctx, from.Stage)
		if err != nil {
			return nil, err
		}
		return b.lowers(ctx, res.stage.Name, src.chain)
	case recipe.KindScratch:
		return nil, nil
	}
	img, err := b.pull(ctx, *from, res.stage.Platform)
	if err != nil {
		return nil, err
	}
	chain, err := imageChain(img)
	if err != nil {
		return nil, err
	}
	return b.lowers(ctx, res.stage.Name, chain)
}
