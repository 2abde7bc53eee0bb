package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/layers"
)

// PruneResult says what Prune removed and kept.
type PruneResult struct {
	EntriesRemoved, EntriesKept    int
	BlobsRemoved, SnapshotsRemoved int
	BytesFreed                     int64 // of layer blobs
}

// Prune removes the cache entries opts does not keep under the state root,
// then every layer blob and snapshot no kept entry uses (as its result or
// below it). It waits for running builds to end and holds off new ones
// while it works, so it never removes what a build holds.
func Prune(ctx context.Context, root string, opts cache.PruneOptions) (*PruneResult, error) {
	ix, err := cache.Open(filepath.Join(root, "cache", "index"))
	if err != nil {
		return nil, err
	}
	removed, kept, release, err := cache.Prune(ctx, root, ix, opts)
	if err != nil {
		return nil, err
	}
	defer release()
	res := &PruneResult{EntriesRemoved: len(removed), EntriesKept: len(kept)}
	blobs, diffIDs := map[string]bool{}, map[string]bool{}
	for _, e := range kept {
		if e.Layer != nil {
			blobs[strings.TrimPrefix(e.Layer.Digest, "sha256:")] = true
			diffIDs[e.Layer.DiffID] = true
		}
		for _, d := range e.Inputs.Parent {
			diffIDs[d] = true
		}
	}
	blobDir := filepath.Join(root, "blobs")
	des, err := os.ReadDir(blobDir)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	for _, de := range des {
		if blobs[de.Name()] {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		if err := os.Remove(filepath.Join(blobDir, de.Name())); err != nil {
			return nil, fmt.Errorf("removing blob: %w", err)
		}
		res.BlobsRemoved++
		res.BytesFreed += fi.Size()
	}
	store, err := layers.OpenStore(filepath.Join(root, "layers"), nil)
	if err != nil {
		return nil, err
	}
	snaps, err := store.Snapshots()
	if err != nil {
		return nil, err
	}
	for _, d := range snaps {
		if diffIDs[d.String()] {
			continue
		}
		if err := store.Remove(ctx, d); err != nil {
			return nil, err
		}
		res.SnapshotsRemoved++
	}
	return res, nil
}
