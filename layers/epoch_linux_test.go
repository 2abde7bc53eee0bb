package layers

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
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

// TestDiffUnchangedDirGetsLowerMtime: a dir a step only touched (a file
// made and removed in it) has no entry in the layer, and the snapshot
// gives it back its lower's mtime, so the next step sees what a step on
// the layer pulled from a cache sees, not the time this build ran.
func TestDiffUnchangedDirGetsLowerMtime(t *testing.T) {
	lower, upper := t.TempDir(), t.TempDir()
	old := time.Unix(1600000000, 123456789)
	for _, root := range []string{lower, upper} {
		must(t, os.Mkdir(filepath.Join(root, "work"), 0o755))
	}
	write(t, filepath.Join(lower, "work/keep"), "kept", 0o644)
	must(t, os.Chtimes(filepath.Join(lower, "work"), old, old))
	write(t, filepath.Join(upper, "work/scratch"), "gone soon", 0o644)
	must(t, os.Remove(filepath.Join(upper, "work/scratch")))
	epoch := time.Unix(1700000000, 0)
	var buf bytes.Buffer
	if _, err := Diff(t.Context(), &buf, DiffOptions{Upper: upper, Lowers: []string{lower}, Epoch: &epoch}); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		t.Errorf("layer has %s, want nothing", h.Name)
	}
	fi, err := os.Lstat(filepath.Join(upper, "work"))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(old) {
		t.Errorf("snapshot mtime of work = %v, want the lower's %v", fi.ModTime(), old)
	}
}
