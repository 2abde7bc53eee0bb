package cache

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratabuild/strata/commit"
)

// TestDirRoundTrip: an entry and its layer written to a directory are
// read back by another Dir value (another build, another state root);
// the layer is copied and checked under the reader's blob directory
// before use.
func TestDirRoundTrip(t *testing.T) {
	local, err := OpenLocal(t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, layer := writeEntry(t, local, "a", "alpha", commit.Gzip)
	empty := baseInputs()
	empty.Step = "changes nothing"
	noLayer := &Entry{Key: empty.Key(), Inputs: empty}

	path := filepath.Join(t.TempDir(), "ci-cache")
	w := &Dir{Path: path}
	if h, err := w.Get(t.Context(), e.Key); err != nil || h != nil {
		t.Fatalf("Get on a directory that does not exist = %v, %v; want a miss", h, err)
	}
	if err := w.Put(t.Context(), e, layer); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := w.Put(t.Context(), noLayer, nil); err != nil {
		t.Fatalf("Put without a layer: %v", err)
	}

	r := &Dir{Path: path}
	h, err := r.Get(t.Context(), e.Key)
	if err != nil || h == nil {
		t.Fatalf("Get = %v, %v; want a hit", h, err)
	}
	if h.Entry.Layer.Digest != e.Layer.Digest || h.From != "local cache "+path {
		t.Errorf("hit: layer %s from %q; want %s from the directory", h.Entry.Layer.Digest, h.From, e.Layer.Digest)
	}
	if _, ok := h.Layer.(*commit.Layer); ok {
		t.Error("the hit's layer is a *commit.Layer: SaveBlob would use it unchecked")
	}
	blobs := t.TempDir()
	saved, err := commit.SaveBlob(t.Context(), h.Layer, blobs)
	if err != nil {
		t.Fatalf("SaveBlob of the hit's layer: %v", err)
	}
	if filepath.Dir(saved.Path()) != blobs {
		t.Errorf("saved blob at %s, want it under %s", saved.Path(), blobs)
	}
	if h, err := r.Get(t.Context(), noLayer.Key); err != nil || h == nil || h.Layer != nil {
		t.Errorf("Get of an entry without a layer = %v, %v", h, err)
	}
	if h, err := r.Get(t.Context(), "sha256:"+strings.Repeat("0", 64)); err != nil || h != nil {
		t.Errorf("Get of a missing key = %v, %v; want a miss", h, err)
	}
	for _, f := range []string{dirMarker, "entries", "blobs/sha256/" + strings.TrimPrefix(e.Layer.Digest, "sha256:")} {
		fi, err := os.Stat(filepath.Join(path, f))
		if err != nil || fi.Mode().Perm()&0o044 != 0o044 {
			t.Errorf("%s: %v, mode %v; want it readable by all", f, err, fi.Mode())
		}
	}
}

// TestDirCorruptBlob: a blob changed in the directory is refused when the
// build copies it in, not used.
func TestDirCorruptBlob(t *testing.T) {
	local, err := OpenLocal(t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, layer := writeEntry(t, local, "a", strings.Repeat("alpha ", 100), commit.Gzip)
	d := &Dir{Path: t.TempDir()}
	if err := d.Put(t.Context(), e, layer); err != nil {
		t.Fatal(err)
	}
	blob := d.blobPath(e.Layer.Digest)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := (&Dir{Path: d.Path}).Get(t.Context(), e.Key)
	if err != nil || h == nil {
		t.Fatalf("Get = %v, %v", h, err)
	}
	if l, err := commit.SaveBlob(t.Context(), h.Layer, t.TempDir()); err == nil {
		t.Errorf("SaveBlob of a corrupt blob = %s, want an error", l.Path())
	}
}

// TestDirConcurrentWriters: two builds writing the same and different
// entries into one new directory at once leave every entry whole and no
// temp file.
func TestDirConcurrentWriters(t *testing.T) {
	local, err := OpenLocal(t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	type item struct {
		e *Entry
		l *commit.Layer
	}
	var items []item
	for i := range 6 {
		e, l := writeEntry(t, local, fmt.Sprint(i), strings.Repeat(fmt.Sprint(i), 50_000), commit.Gzip)
		items = append(items, item{e, l})
	}
	path := filepath.Join(t.TempDir(), "cache")
	var wg sync.WaitGroup
	for w := range 2 {
		d := &Dir{Path: path} // each build has its own
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range items {
				it := items[(i+w*3)%len(items)]
				if err := d.Put(t.Context(), it.e, it.l); err != nil {
					t.Errorf("writer %d: %v", w, err)
				}
			}
		}()
	}
	wg.Wait()
	r := &Dir{Path: path}
	for _, it := range items {
		h, err := r.Get(t.Context(), it.e.Key)
		if err != nil || h == nil {
			t.Fatalf("Get(%s) = %v, %v", it.e.Key, h, err)
		}
		rc, err := h.Layer.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Errorf("reading the layer of %s: %v", it.e.Inputs.Step, err)
		}
	}
	filepath.WalkDir(path, func(p string, _ os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(filepath.Base(p), ".tmp-") {
			t.Errorf("temp file left: %s", p)
		}
		return err
	})
}

// TestDirRefusesOtherDirectories: a directory holding other files is not
// written to, nor read as a cache; a marker of another version is named.
func TestDirRefusesOtherDirectories(t *testing.T) {
	local, err := OpenLocal(t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, layer := writeEntry(t, local, "a", "alpha", commit.Gzip)
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "index.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &Dir{Path: other}
	if err := d.Put(t.Context(), e, layer); err == nil || !strings.Contains(err.Error(), "not a strata cache directory") {
		t.Errorf("Put into a directory of other files: %v, want a refusal", err)
	}
	if _, err := d.Get(t.Context(), e.Key); err == nil {
		t.Error("Get from a directory of other files succeeded, want an error")
	}
	if _, err := os.Stat(filepath.Join(other, "entries")); err == nil {
		t.Error("the refused directory was written to")
	}

	newer := t.TempDir()
	if err := os.WriteFile(filepath.Join(newer, dirMarker), []byte(`{"layout":"strata-cache-dir","version":2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Dir{Path: newer}).Get(t.Context(), e.Key); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("Get from a version 2 directory: %v, want an error naming the version", err)
	}
}

// TestDirRemovesDeadWritersTemps: the temp files a killed writer left in
// the directory (a CI job cancelled while it copied a blob) are removed
// by the next writer once unchanged for an hour; a live writer's stay.
func TestDirRemovesDeadWritersTemps(t *testing.T) {
	local, err := OpenLocal(t.TempDir(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e, layer := writeEntry(t, local, "a", "alpha", commit.Gzip)
	path := filepath.Join(t.TempDir(), "ci-cache")
	if err := (&Dir{Path: path}).Put(t.Context(), e, layer); err != nil {
		t.Fatal(err)
	}
	old, fresh := filepath.Join(path, "blobs", "sha256", ".tmp-1"), filepath.Join(path, "entries", ".tmp-2")
	for _, f := range []string{old, fresh} {
		if err := os.WriteFile(f, []byte("half a blob"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	hourAgo := time.Now().Add(-61 * time.Minute)
	if err := os.Chtimes(old, hourAgo, hourAgo); err != nil {
		t.Fatal(err)
	}
	if err := (&Dir{Path: path}).Put(t.Context(), e, layer); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); err == nil {
		t.Errorf("%s, unchanged for an hour, is still there", old)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("%s, a live writer's: %v", fresh, err)
	}
}

// TestDirCheckWriteRefusesAFile: a dest= that is a file, or a path under
// one, is refused before the build.
func TestDirCheckWriteRefusesAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "afile")
	if err := os.WriteFile(file, []byte("hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, filepath.Join(file, "sub")} {
		if err := (&Dir{Path: p}).CheckWrite(); err == nil || !strings.Contains(err.Error(), file+" is not a directory") {
			t.Errorf("CheckWrite(%s) = %v, want %s named as not a directory", p, err, file)
		}
	}
	dangling := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink("/nonexistent/cache", dangling); err != nil {
		t.Fatal(err)
	}
	if err := (&Dir{Path: dangling}).CheckWrite(); err == nil || !strings.Contains(err.Error(), "which does not exist") {
		t.Errorf("CheckWrite(a dangling link) = %v, want it refused", err)
	}
	if err := (&Dir{Path: filepath.Join(t.TempDir(), "new", "cache")}).CheckWrite(); err != nil {
		t.Errorf("CheckWrite of a dir to be made: %v", err)
	}
}
