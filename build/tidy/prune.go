// Package tidy keeps a state root tidy between builds: Reap removes what
// builds killed before they could clean up left behind, Prune what no kept
// cache entry uses.
package tidy

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/internal/stateroot"
	"github.com/stratabuild/strata/layers"
)

// PruneResult says what Prune removed and kept.
type PruneResult struct {
	cache.PruneResult
	MountsRemoved int   // cache mounts whose data went
	MountBytes    int64 // their bytes
}

// Prune removes the cache entries opts does not keep under the state root,
// then every layer blob and snapshot no kept entry uses, the data of
// cache mounts unused for opts.KeepDuration or past opts.KeepBytes, and
// the remembered file digests of contexts not built for
// opts.KeepDuration (see cache.Sums), after what killed builds left
// (Reap). With opts.All, every entry, blob, snapshot, cache mount's data
// and remembered digest goes: what is left is the state directory's
// empty layout, which a rootless user, unlike the files her subordinate
// ids own, can remove herself. It waits for running builds to end and
// holds off new ones while it works.
func Prune(ctx context.Context, dir string, opts cache.PruneOptions) (*PruneResult, error) {
	root, err := stateroot.OpenExisting(dir)
	if err != nil {
		return nil, err
	}
	release, err := root.LockExclusive(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	// What killed builds left goes first: a snapshot may be the lower dir
	// of a killed build's overlay, still mounted, its step still running.
	Reap(ctx, root, "", func(string) {}, slog.New(slog.DiscardHandler))
	if err := layers.RetireOldSnapshots(root.Snapshots()); err != nil {
		return nil, err
	}
	local, err := cache.OpenLocal(root.CacheIndex(), root.Blobs())
	if err != nil {
		return nil, err
	}
	store, err := layers.OpenStore(root.Snapshots(), nil)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	res, err := local.Prune(ctx, opts, store)
	if err != nil {
		return nil, err
	}
	out := &PruneResult{PruneResult: *res}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	keepBytes := int64(-1) // no limit
	switch {
	case opts.All:
		keepBytes = 0
	case opts.LimitBytes:
		keepBytes = max(opts.KeepBytes, 0)
	}
	out.MountsRemoved, out.MountBytes, err = root.PruneCacheMounts(keepBytes, opts.KeepDuration, now)
	if err != nil {
		return out, err
	}
	if opts.All {
		return out, os.RemoveAll(root.ContextSums())
	}
	return out, cache.PruneSums(root.ContextSums(), opts.KeepDuration, now)
}
