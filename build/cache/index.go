package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Index is the local cache index: one JSON file per key in a directory.
// Each file is written to a temp name, synced and renamed into place, so a
// reader sees a whole entry or none, whatever happens to the writer; any
// number of builds may read and write it at once.
type Index struct {
	dir string
}

// Open opens (creating) the index in dir, <root>/cache/index.
func Open(dir string) (*Index, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening cache index: %w", err)
	}
	return &Index{dir: dir}, nil
}

func (ix *Index) path(key string) string {
	return filepath.Join(ix.dir, strings.TrimPrefix(key, "sha256:")+".json")
}

// Get returns the entry for key. A missing or unreadable entry (a torn
// file from a crash cannot exist, but a hand-edited one can) is a miss.
func (ix *Index) Get(key string) (*Entry, bool) {
	data, err := os.ReadFile(ix.path(key))
	if err != nil {
		return nil, false
	}
	var e Entry
	if json.Unmarshal(data, &e) != nil || e.Key != key {
		return nil, false
	}
	return &e, true
}

// Touch records that e was used now (best effort: a failure only makes
// pruning less precise).
func (ix *Index) Touch(e *Entry) {
	now := time.Now()
	_ = os.Chtimes(ix.path(e.Key), now, now)
	e.LastUsed = now
}

// Put writes e atomically.
func (ix *Index) Put(e *Entry) error {
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(ix.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("writing cache entry: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing cache entry: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing cache entry: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing cache entry: %w", err)
	}
	if err := os.Rename(tmp.Name(), ix.path(e.Key)); err != nil {
		return fmt.Errorf("writing cache entry: %w", err)
	}
	if d, err := os.Open(ix.dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Entries returns every readable entry, LastUsed taken from the file's
// mtime. Temp files of writers that died are removed when old.
func (ix *Index) Entries() ([]*Entry, error) {
	des, err := os.ReadDir(ix.dir)
	if err != nil {
		return nil, err
	}
	var out []*Entry
	for _, de := range des {
		name := de.Name()
		fi, err := de.Info()
		if err != nil {
			continue
		}
		if strings.HasPrefix(name, ".tmp-") {
			if time.Since(fi.ModTime()) > time.Hour {
				os.Remove(filepath.Join(ix.dir, name))
			}
			continue
		}
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		e, ok := ix.Get("sha256:" + strings.TrimSuffix(name, ".json"))
		if !ok {
			continue
		}
		e.LastUsed = fi.ModTime()
		out = append(out, e)
	}
	return out, nil
}

// Nearest returns the most recently used entry made for the same step
// (StepID), to explain a miss; nil if there is none.
func (ix *Index) Nearest(stepID string) *Entry {
	entries, err := ix.Entries()
	if err != nil {
		return nil
	}
	var best *Entry
	for _, e := range entries {
		if e.Inputs.StepID == stepID && (best == nil || e.LastUsed.After(best.LastUsed)) {
			best = e
		}
	}
	return best
}

// Remove deletes the entry for key.
func (ix *Index) Remove(key string) error {
	err := os.Remove(ix.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// AcquireBuild takes the build lock of the state root, shared: any number
// of builds run at once, and Prune waits until none does. release must be
// called when the build ends.
func AcquireBuild(root string) (release func(), err error) {
	return lock(root, syscall.LOCK_SH)
}

func lock(root string, how int) (func(), error) {
	dir := filepath.Join(root, "cache")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// PruneOptions say what Prune keeps.
type PruneOptions struct {
	// KeepBytes, if > 0, is the most layer bytes to keep; the least
	// recently used entries go first.
	KeepBytes int64
	// KeepDuration, if > 0, drops entries not used for longer.
	KeepDuration time.Duration
	// Now is the time to measure KeepDuration from (zero: now).
	Now time.Time
}

// Prune takes the build lock exclusively — waiting for running builds to
// end, so that it never removes what one of them holds — and removes the
// entries opts does not keep. It returns the removed and the kept entries,
// so that the caller can remove blobs and snapshots no kept entry uses,
// and a release func to call once that is done (the lock is held until).
func Prune(ctx context.Context, root string, ix *Index, opts PruneOptions) (removed, kept []*Entry, release func(), err error) {
	release, err = lockCtx(ctx, root)
	if err != nil {
		return nil, nil, nil, err
	}
	defer func() {
		if err != nil {
			release()
		}
	}()
	entries, err := ix.Entries()
	if err != nil {
		return nil, nil, nil, err
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].LastUsed.After(entries[j].LastUsed) })
	var total int64
	for _, e := range entries {
		drop := opts.KeepDuration > 0 && now.Sub(e.LastUsed) > opts.KeepDuration
		size := int64(0)
		if e.Layer != nil {
			size = e.Layer.Size
		}
		if !drop && opts.KeepBytes > 0 && total+size > opts.KeepBytes {
			drop = true
		}
		if drop {
			if err := ix.Remove(e.Key); err != nil {
				return nil, nil, nil, err
			}
			removed = append(removed, e)
			continue
		}
		total += size
		kept = append(kept, e)
	}
	return removed, kept, release, nil
}

// lockCtx takes the build lock exclusively, polling so that ctx can stop
// the wait.
func lockCtx(ctx context.Context, root string) (func(), error) {
	for {
		release, err := lock(root, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return release, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for running builds to end: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
