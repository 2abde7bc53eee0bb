package cache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/stratabuild/strata/commit"
)

// PruneOptions say what Prune keeps. The zero value keeps every entry.
type PruneOptions struct {
	// KeepBytes, if LimitBytes, is the most layer bytes to keep; the
	// least recently used entries go first, and with 0 every entry goes
	// (even one whose step made no layer: its parents' snapshots stay
	// with it).
	KeepBytes  int64
	LimitBytes bool
	// KeepDuration, if > 0, drops entries not used for longer.
	KeepDuration time.Duration
	// All drops every entry, whatever the other fields say.
	All bool
	// Now is the time to measure KeepDuration from (zero: now).
	Now time.Time
}

// PruneResult says what Prune removed and kept.
type PruneResult struct {
	EntriesRemoved, EntriesKept    int
	BlobsRemoved, SnapshotsRemoved int
	BytesFreed                     int64 // of layer blobs
}

// Snapshots are the unpacked layers a Prune may remove: layers.Store.
type Snapshots interface {
	Snapshots() ([]digest.Digest, error)
	Remove(ctx context.Context, diffID digest.Digest) error
}

// Prune removes the entries opts does not keep, then every layer blob and
// snapshot that no kept entry uses (as its result or below it), and the
// re-encodings of the layers of entries it removed, and the step files
// of the entries it did not keep (see stepsDir). The caller
// holds the state root's build lock exclusively, so no build holds
// anything Prune removes.
func (l *Local) Prune(ctx context.Context, opts PruneOptions, snaps Snapshots) (*PruneResult, error) {
	kept, removed, err := l.pruneEntries(opts)
	if err != nil {
		return nil, err
	}
	res := &PruneResult{EntriesRemoved: removed, EntriesKept: len(kept)}
	blobs, diffIDs := uses(kept)
	results := resultsOf(kept)
	l.pruneSteps(kept)
	if err := l.pruneEncodings(results, blobs); err != nil {
		return nil, err
	}
	des, err := os.ReadDir(l.blobs)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, de := range des {
		// A blob's diffID record (commit.DiffIDSuffix) goes with it.
		if blobs[strings.TrimSuffix(de.Name(), commit.DiffIDSuffix)] {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		if err := os.Remove(filepath.Join(l.blobs, de.Name())); err != nil {
			return nil, fmt.Errorf("removing blob: %w", err)
		}
		if strings.HasSuffix(de.Name(), commit.DiffIDSuffix) {
			continue // a record, not a blob
		}
		res.BlobsRemoved++
		res.BytesFreed += fi.Size()
	}
	all, err := snaps.Snapshots()
	if err != nil {
		return nil, err
	}
	for _, d := range all {
		if diffIDs[d.String()] {
			continue
		}
		if err := snaps.Remove(ctx, d); err != nil {
			return nil, err
		}
		res.SnapshotsRemoved++
	}
	// Every snapshot no kept entry uses is gone: so are the unrecorded.
	if err := os.RemoveAll(filepath.Join(l.dir, unrecordedDir)); err != nil {
		return nil, err
	}
	return res, nil
}

// resultsOf returns the diffIDs of entries' own layers.
func resultsOf(entries []*Entry) map[string]bool {
	results := map[string]bool{}
	for _, e := range entries {
		if e.Layer != nil {
			results[e.Layer.DiffID] = true
		}
	}
	return results
}

// uses returns the blobs (digest hex) and the snapshots (diffIDs) that
// entries use: their layers', and those of the layers below them.
func uses(entries []*Entry) (blobs, diffIDs map[string]bool) {
	blobs, diffIDs = map[string]bool{}, map[string]bool{}
	for _, e := range entries {
		if e.Layer != nil {
			blobs[strings.TrimPrefix(e.Layer.Digest, "sha256:")] = true
			diffIDs[e.Layer.DiffID] = true
		}
		for _, d := range e.Inputs.Parent {
			diffIDs[d] = true
		}
	}
	return blobs, diffIDs
}

// pruneEntries removes the entries opts does not keep, least recently
// used first; it returns those kept and how many went.
func (l *Local) pruneEntries(opts PruneOptions) (kept []*Entry, removed int, err error) {
	entries, err := l.Entries()
	if err != nil {
		return nil, 0, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].LastUsed.After(entries[j].LastUsed) })
	var total int64
	for _, e := range entries {
		size := int64(0)
		if e.Layer != nil {
			size = e.Layer.Size
		}
		drop := opts.All ||
			opts.KeepDuration > 0 && now.Sub(e.LastUsed) > opts.KeepDuration ||
			opts.LimitBytes && (opts.KeepBytes <= 0 || total+size > opts.KeepBytes)
		if drop {
			if err := l.Remove(e.Key); err != nil {
				return nil, 0, err
			}
			removed++
			continue
		}
		total += size
		kept = append(kept, e)
	}
	return kept, removed, nil
}
