package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/commit"
)

// Dir is a cache in a local directory (--cache-to type=local,dest=DIR,
// --cache-from type=local,src=DIR): one that a CI system keeps between
// jobs (GitHub's cache action, GitLab's cache:), readable by any state
// root. Its layout:
//
//	DIR/strata-cache.json       {"layout": "strata-cache-dir", "version": 1}
//	DIR/entries/<key hex>.json  an Entry, as JSON
//	DIR/blobs/sha256/<hex>      the entries' layer blobs, by digest
//
// Not an OCI layout of cache images (as Registry keeps): a layout's
// index.json is one file every writer rewrites, so two builds writing at
// once would need a lock (on whatever filesystem the CI restores the
// directory to) or lose each other's entries. Here every write makes new
// files, each through a temp file renamed into place: a reader sees a
// whole entry or none, an entry is written after its blob, and writers
// never need to agree. Blobs are where an OCI layout keeps them.
//
// A directory only grows; a CI cache key that changes (per branch, per
// week) renews it, as with buildx's local cache. Entries are touched when
// hit, so `find DIR/entries -mtime +30` finds the unused ones.
type Dir struct {
	Path string

	mu    sync.Mutex
	ready bool // the marker was checked (or written)
}

var _ Store = (*Dir)(nil)

const (
	dirMarker = "strata-cache.json"
	dirLayout = "strata-cache-dir"
)

// dirMeta is what the marker file holds.
type dirMeta struct {
	Layout  string `json:"layout"`
	Version int    `json:"version"`
}

func (d *Dir) String() string { return "local cache " + d.Path }

func (d *Dir) entryPath(key string) string {
	return filepath.Join(d.Path, "entries", strings.TrimPrefix(key, "sha256:")+".json")
}

func (d *Dir) blobPath(digest string) string {
	return filepath.Join(d.Path, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

// Get reads the entry of key; its layer is read from the directory when
// the build needs it, and checked then (digest and diffID) as it is
// copied under the state root (commit.SaveBlob). A missing directory is
// an empty cache; an entry whose blob is gone is a miss.
func (d *Dir) Get(_ context.Context, key string) (*Hit, error) {
	if err := d.check(false); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(d.entryPath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", d, err)
	}
	var e Entry
	if err := json.Unmarshal(data, &e); err != nil || e.Key != key {
		return nil, fmt.Errorf("%s holds a malformed cache entry %s", d, d.entryPath(key))
	}
	h := &Hit{Entry: &e, From: d.String()}
	if e.Layer != nil {
		l, err := d.open(e.Layer)
		if err != nil {
			return nil, nil
		}
		h.Layer = l
	}
	now := time.Now()
	_ = os.Chtimes(d.entryPath(key), now, now) // best effort: the directory may be read-only
	return h, nil
}

// dirLayer is a layer whose blob is in a Dir. It is not a *commit.Layer,
// so that commit.SaveBlob copies it under the state root, checking it,
// before anything uses its content: a CI cache is an input from outside.
type dirLayer struct{ *commit.Layer }

func (d *Dir) open(rec *Layer) (v1.Layer, error) {
	l, err := openBlob(d.blobPath(rec.Digest), rec)
	if err != nil {
		return nil, err
	}
	return dirLayer{l}, nil
}

// Put writes e's layer blob, unless the directory has it, then e.
func (d *Dir) Put(_ context.Context, e *Entry, layer v1.Layer) error {
	if err := d.check(true); err != nil {
		return err
	}
	if e.Layer != nil {
		if layer == nil {
			return fmt.Errorf("writing %s: entry %s has no layer to write", d, e.Key)
		}
		if err := d.putBlob(e.Layer, layer); err != nil {
			return fmt.Errorf("writing %s: %w", d, err)
		}
	}
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Dir(d.entryPath(e.Key)), d.entryPath(e.Key), data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", d, err)
	}
	return nil
}

// putBlob copies layer's blob into the directory, checking its digest and
// size against rec, through a temp file renamed into place.
func (d *Dir) putBlob(rec *Layer, layer v1.Layer) error {
	path := d.blobPath(rec.Digest)
	if fi, err := os.Stat(path); err == nil && fi.Size() == rec.Size {
		return nil
	}
	rc, err := layer.Compressed()
	if err != nil {
		return fmt.Errorf("reading layer %s: %w", rec.Digest, err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), rc)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copying layer %s: %w", rec.Digest, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != rec.Digest || n != rec.Size {
		return fmt.Errorf("copying layer %s: read %s, %d bytes; want %d bytes", rec.Digest, got, n, rec.Size)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// check makes sure the directory is a strata cache: one with the marker
// file of this layout version, or — for a writer, which then makes it one
// — a new or empty directory. Any other directory is refused, so that a
// mistyped dest= never fills a directory of something else. Two writers
// may make the same directory at once: the marker is written first (an
// atomic rename of the same bytes), then the subdirectories.
func (d *Dir) check(write bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ready {
		return nil
	}
	marker := filepath.Join(d.Path, dirMarker)
	data, err := os.ReadFile(marker)
	if errors.Is(err, fs.ErrNotExist) {
		empty, eerr := d.empty()
		switch {
		case eerr != nil:
			return fmt.Errorf("reading %s: %w", d, eerr)
		case empty && !write:
			return nil // no cache yet: every Get misses
		case empty:
			if err := d.mark(); err != nil {
				return fmt.Errorf("creating %s: %w", d, err)
			}
			data, err = os.ReadFile(marker)
		default:
			// Another build may have made it since the first read: the
			// marker is the first thing a build writes there.
			if data, err = os.ReadFile(marker); errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s is not a strata cache directory (it has no %s, and other files): name a new or empty directory", d, dirMarker)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", d, err)
	}
	var m dirMeta
	if json.Unmarshal(data, &m) != nil || m.Layout != dirLayout {
		return fmt.Errorf("%s: %s is not strata's", d, dirMarker)
	}
	if m.Version != 1 {
		return fmt.Errorf("%s has layout version %d; this strata reads version 1 (use another directory)", d, m.Version)
	}
	if write {
		for _, sub := range []string{"entries", filepath.Join("blobs", "sha256")} {
			if err := os.MkdirAll(filepath.Join(d.Path, sub), 0o755); err != nil {
				return fmt.Errorf("creating %s: %w", d, err)
			}
			removeStaleTemps(filepath.Join(d.Path, sub))
		}
	}
	d.ready = true
	return nil
}

// CheckWrite returns an error if a build could not write the cache:
// the directory — or, not made yet, its nearest existing parent — is a
// file or a dangling link, or it or its entries and blobs directories are
// not writable (a read-only filesystem, another user's). It writes
// nothing: call it before a build, so that the build does not find out
// after its last step.
func (d *Dir) CheckWrite() error {
	dir := d.Path
	for {
		fi, err := os.Stat(dir)
		if err == nil && !fi.IsDir() {
			return fmt.Errorf("%s: %s is not a directory", d, dir)
		}
		if li, lerr := os.Lstat(dir); err != nil && lerr == nil && li.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(dir)
			return fmt.Errorf("%s: %s is a link to %s, which does not exist", d, dir, target)
		}
		if err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	for _, p := range []string{dir, filepath.Join(d.Path, "entries"), filepath.Join(d.Path, "blobs", "sha256")} {
		if _, err := os.Stat(p); err != nil {
			continue // made when the cache is first written
		}
		if err := commit.WritableDir(p); err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
	}
	return nil
}

// removeStaleTemps removes the temp files dead writers left in dir (a
// killed CI job's half-copied blob): the directory is kept between jobs,
// and nothing else would.
func removeStaleTemps(dir string) {
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), ".tmp-") {
			continue
		}
		if fi, err := de.Info(); err == nil && staleTemp(fi) {
			os.Remove(filepath.Join(dir, de.Name()))
		}
	}
}

// empty says whether the directory is missing or holds nothing but the
// temp files of a writer making it.
func (d *Dir) empty() (bool, error) {
	des, err := os.ReadDir(d.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), ".tmp-") {
			return false, nil
		}
	}
	return true, err
}

// mark makes the directory and writes its marker file.
func (d *Dir) mark() error {
	if err := os.MkdirAll(d.Path, 0o755); err != nil {
		return err
	}
	data, err := json.Marshal(dirMeta{Layout: dirLayout, Version: 1})
	if err != nil {
		return err
	}
	return writeAtomic(d.Path, filepath.Join(d.Path, dirMarker), append(data, '\n'), 0o644)
}
