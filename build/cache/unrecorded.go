package cache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
)

// A step's snapshot is stored under its diffID (layers.Store.Commit)
// before its layer is compressed and its entry recorded. A build that
// fails or is stopped in between (a full disk while compressing, ^C)
// leaves a snapshot that no entry uses and no build looks up again: the
// step misses, and if it is not reproducible makes another. The index
// notes such snapshots from their store to their entry:
//
//	index/unrecorded/<diffID hex>   an empty file
//
// and RemoveUnrecorded removes the snapshots of the notes no entry uses,
// once no build runs.
const unrecordedDir = "unrecorded"

func (l *Local) unrecordedPath(diffID string) string {
	return filepath.Join(l.dir, unrecordedDir, strings.TrimPrefix(diffID, "sha256:"))
}

// NoteUnrecorded notes that the snapshot of diffID, a step's layer, is
// stored and its entry not yet recorded: Put of an entry whose layer it
// is removes the note.
func (l *Local) NoteUnrecorded(diffID string) error {
	if err := os.MkdirAll(filepath.Join(l.dir, unrecordedDir), 0o700); err != nil {
		return err
	}
	f, err := os.Create(l.unrecordedPath(diffID))
	if err != nil {
		return err
	}
	return f.Close()
}

// recorded removes the note of diffID, if any (best effort: a note left
// costs only a read of the index when no build runs).
func (l *Local) recorded(diffID string) {
	_ = os.Remove(l.unrecordedPath(diffID))
}

// HasUnrecorded reports whether any snapshot is noted as unrecorded.
func (l *Local) HasUnrecorded() bool {
	des, _ := os.ReadDir(filepath.Join(l.dir, unrecordedDir))
	return len(des) > 0
}

// RemoveUnrecorded removes the snapshots noted as unrecorded that are no
// entry's result, and every note; it returns how many it removed. One
// that an entry lists below its result (a later step of the build was
// recorded) goes too: it has no blob to unpack it from, so no build can
// use it but by making it again — a hit on that entry needs the step
// below it run again first, and then stores it. The caller holds the
// state root's build lock exclusively, so no build is between a
// snapshot's store and its entry, or has it mounted.
func (l *Local) RemoveUnrecorded(ctx context.Context, snaps Snapshots) (int, error) {
	dir := filepath.Join(l.dir, unrecordedDir)
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || err == nil && len(des) == 0 {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	entries, err := l.Entries()
	if err != nil {
		return 0, err
	}
	used := resultsOf(entries)
	all, err := snaps.Snapshots()
	if err != nil {
		return 0, err
	}
	stored := map[digest.Digest]bool{}
	for _, d := range all {
		stored[d] = true
	}
	removed := 0
	for _, de := range des {
		d := digest.NewDigestFromEncoded(digest.SHA256, de.Name())
		if stored[d] && !used[d.String()] {
			if err := snaps.Remove(ctx, d); err != nil {
				return removed, fmt.Errorf("removing the snapshot of an unrecorded step %s: %w", d, err)
			}
			removed++
		}
		if err := os.Remove(filepath.Join(dir, de.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, err
		}
	}
	return removed, nil
}
