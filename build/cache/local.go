package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/commit"
)

// Local is the cache under the state root: one JSON file per key in an
// index directory, the layers' blobs in the root's blob directory. Each
// entry is written to a temp name, synced and renamed into place, so a
// reader sees a whole entry or none, whatever happens to the writer; any
// number of builds may read and write it at once.
type Local struct {
	dir   string // the index
	blobs string // committed layer blobs, named by digest hex
}

var _ Store = (*Local)(nil)

// OpenLocal opens (creating) the index in dir; blobs is where the layers'
// blobs are kept.
func OpenLocal(dir, blobs string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("opening cache index: %w", err)
	}
	return &Local{dir: dir, blobs: blobs}, nil
}

func (l *Local) String() string { return "local" }

func (l *Local) path(key string) string {
	return filepath.Join(l.dir, keyHex(key)+".json")
}

// Get returns the hit for key if its entry is readable and its blob is
// still there; the entry is marked used, and has its step's file (see
// stepsDir).
func (l *Local) Get(_ context.Context, key string) (*Hit, error) {
	e, ok := l.entry(key)
	if !ok {
		return nil, nil
	}
	h := &Hit{Entry: e, From: l.String()}
	if e.Layer != nil {
		layer, err := l.open(e.Layer)
		if err != nil {
			return nil, nil // pruned meanwhile: a miss
		}
		h.Layer = layer
	}
	l.touch(e)
	_ = l.markStep(e) // an entry an older strata wrote, or whose file a crash lost
	return h, nil
}

// open opens a committed layer blob kept under the state root.
func (l *Local) open(rec *Layer) (*commit.Layer, error) {
	return openBlob(filepath.Join(l.blobs, strings.TrimPrefix(rec.Digest, "sha256:")), rec)
}

// entry reads the entry for key. A missing or unreadable entry (a torn
// file from a crash cannot exist, but a hand-edited one can) is a miss.
func (l *Local) entry(key string) (*Entry, bool) {
	data, err := os.ReadFile(l.path(key))
	if err != nil {
		return nil, false
	}
	var e Entry
	if json.Unmarshal(data, &e) != nil || e.Key != key {
		return nil, false
	}
	return &e, true
}

// touch records that e was used now (best effort: a failure only makes
// pruning less precise).
func (l *Local) touch(e *Entry) {
	now := time.Now()
	_ = os.Chtimes(l.path(e.Key), now, now)
	e.LastUsed = now
}

// Put writes e atomically. Its layer's blob must already be in the blob
// directory (commit.WriteLayer put it there).
func (l *Local) Put(_ context.Context, e *Entry, _ v1.Layer) error {
	e.KeyVersion = keyVersion // its key was made so: it matches this strata's
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(l.dir, l.path(e.Key), data, 0o600); err != nil {
		return fmt.Errorf("writing cache entry: %w", err)
	}
	if e.Layer != nil {
		l.recorded(e.Layer.DiffID)
	}
	_ = l.markStep(e) // a hint: the entry is recorded
	return nil
}

// writeAtomic writes data to path through a synced temp file in dir,
// renamed into place: a reader sees the old file or the whole new one.
func writeAtomic(dir, path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Empty reports whether the index holds no entry (temp files aside); an
// index that cannot be read is not known to be empty.
func (l *Local) Empty() bool {
	d, err := os.Open(l.dir)
	if err != nil {
		return false
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(64)
		for _, n := range names {
			if strings.HasSuffix(n, ".json") && !strings.HasPrefix(n, ".tmp-") {
				return false
			}
		}
		if err != nil {
			return errors.Is(err, io.EOF)
		}
	}
}

// Entries returns every readable entry, LastUsed taken from the file's
// mtime. Temp files of writers that died are removed when old.
func (l *Local) Entries() ([]*Entry, error) {
	des, err := os.ReadDir(l.dir)
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
			if staleTemp(fi) {
				os.Remove(filepath.Join(l.dir, name))
			}
			continue
		}
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		e, ok := l.entry("sha256:" + strings.TrimSuffix(name, ".json"))
		if !ok {
			continue
		}
		e.LastUsed = fi.ModTime()
		out = append(out, e)
	}
	return out, nil
}

// staleTemp reports whether a writer's temp file (.tmp-*), with info fi,
// is a dead writer's: unchanged for an hour, where a live writer's grows.
func staleTemp(fi fs.FileInfo) bool { return time.Since(fi.ModTime()) > time.Hour }

// Remove deletes the entry for key.
func (l *Local) Remove(key string) error {
	err := os.Remove(l.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
