package layers

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestDiffEpochAppliesToSnapshot: with an epoch, the tar's mtimes are
// clamped to it (older ones kept) and the upper dir, the next snapshot,
// gets exactly the tar's mtimes, so a step on it sees the tree a step on
// the layer pulled from a cache would see.
func TestDiffEpochAppliesToSnapshot(t *testing.T) {
	upper := t.TempDir()
	epoch := time.Unix(1700000000, 0).UTC()
	old := epoch.Add(-time.Hour).Add(300 * time.Millisecond)
	must(t, os.MkdirAll(filepath.Join(upper, "new/dir"), 0o755))
	write(t, filepath.Join(upper, "new/dir/file"), "now", 0o644)
	write(t, filepath.Join(upper, "old"), "old", 0o644)
	must(t, os.Chtimes(filepath.Join(upper, "old"), old, old))
	var buf bytes.Buffer
	if _, err := Diff(t.Context(), &buf, DiffOptions{Upper: upper, Epoch: &epoch}); err != nil {
		t.Fatal(err)
	}
	tarTimes := map[string]time.Time{}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		tarTimes[h.Name] = h.ModTime
	}
	for name, want := range map[string]time.Time{"new/": epoch, "new/dir/": epoch, "new/dir/file": epoch, "old": old.Truncate(time.Second)} {
		if got := tarTimes[name]; !got.Equal(want) {
			t.Errorf("tar mtime of %s = %v, want %v", name, got, want)
		}
		fi, err := os.Lstat(filepath.Join(upper, name))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(want) {
			t.Errorf("snapshot mtime of %s = %v, want the tar's %v", name, fi.ModTime(), want)
		}
	}
}

// TestDiffSnapshotIsTheLayers: a dir a step only touched (a file made
// and removed in it) has no entry in the layer, and is not in the
// snapshot either: the lower's dir, with its mtime, shows through, as it
// does over the layer pulled from a cache. The store shares a snapshot
// between every chain whose layer has its diffID, so the snapshot diffed
// over another chain (here none) must give the same tar.
func TestDiffSnapshotIsTheLayers(t *testing.T) {
	lower, upper := t.TempDir(), t.TempDir()
	old := time.Unix(1600000000, 123456789)
	for _, root := range []string{lower, upper} {
		must(t, os.Mkdir(filepath.Join(root, "work"), 0o755))
	}
	write(t, filepath.Join(lower, "work/keep"), "kept", 0o644)
	must(t, os.Chtimes(filepath.Join(lower, "work"), old, old))
	write(t, filepath.Join(upper, "work/scratch"), "gone soon", 0o644)
	must(t, os.Remove(filepath.Join(upper, "work/scratch")))
	write(t, filepath.Join(upper, "new"), "new", 0o644)
	epoch := time.Unix(1700000000, 0)
	var made bytes.Buffer
	if _, err := Diff(t.Context(), &made, DiffOptions{Upper: upper, Lowers: []string{lower}, Epoch: &epoch}); err != nil {
		t.Fatal(err)
	}
	want := fileE("new", "new")
	want.UID, want.GID = os.Getuid(), os.Getgid() // the test's, run as root or not
	if diff := cmp.Diff([]tarEntry{want}, readTar(t, made.Bytes())); diff != "" {
		t.Errorf("layer entries (-want +got):\n%s", diff)
	}
	if _, err := os.Lstat(filepath.Join(upper, "work")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the snapshot holds work, which its layer does not: %v", err)
	}
	var again bytes.Buffer
	if _, err := Diff(t.Context(), &again, DiffOptions{Upper: upper, Lowers: []string{t.TempDir()}, Epoch: &epoch, KeepUpper: true}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(made.Bytes(), again.Bytes()) {
		t.Errorf("the snapshot diffed over another chain gives %v, its layer was %v", readTar(t, again.Bytes()), readTar(t, made.Bytes()))
	}
}
