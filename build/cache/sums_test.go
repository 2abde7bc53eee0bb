package cache

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// shortSettle makes files settled (see settleTime) 50 ms after their last
// change, for the test.
func shortSettle(t *testing.T) func() {
	old := settleTime
	settleTime = 50 * time.Millisecond
	t.Cleanup(func() { settleTime = old })
	return func() { time.Sleep(settleTime + 30*time.Millisecond) }
}

// hashWith hashes paths below dir with the sums saved in idx, saves them
// again, and returns the digests and how many were remembered.
func hashWith(t *testing.T, idx, dir string, paths []string) (map[string]string, int) {
	t.Helper()
	return hashIn(t, OpenSums(idx, dir, false), dir, paths)
}

// hashIn hashes paths below dir with s, checks the digests against a read
// of every file, saves s, and returns the digests and how many s
// remembered.
func hashIn(t *testing.T, s *Sums, dir string, paths []string) (map[string]string, int) {
	t.Helper()
	got, err := HashFiles(dir, paths, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	want, err := HashFiles(dir, paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("with sums: %v\nread again: %v", got, want)
	}
	return got, s.hits
}

// TestSumsNotReadAgain: files hashed once their changes are settled are
// not read again by the next build, for every kind of input.
func TestSumsNotReadAgain(t *testing.T) {
	settle := shortSettle(t)
	dir, idx := t.TempDir(), t.TempDir()
	paths := writeContext(t, dir)
	settle()
	if _, hits := hashWith(t, idx, dir, paths); hits != 0 {
		t.Errorf("first build: %d remembered, want 0", hits)
	}
	if _, hits := hashWith(t, idx, dir, paths); hits != len(paths) {
		t.Errorf("second build: %d of %d remembered", hits, len(paths))
	}
	// Another context's sums are its own.
	other := t.TempDir()
	otherPaths := writeContext(t, other)
	settle()
	if _, hits := hashWith(t, idx, other, otherPaths); hits != 0 {
		t.Errorf("another context: %d remembered, want 0", hits)
	}
}

// rememberedContext writes a context (see writeContext) whose files a
// first build has remembered: the dir, the sums' dir and the paths.
func rememberedContext(t *testing.T) (dir, idx string, paths []string) {
	t.Helper()
	settle := shortSettle(t)
	dir, idx = t.TempDir(), t.TempDir()
	paths = writeContext(t, dir)
	settle()
	hashWith(t, idx, dir, paths)
	return dir, idx, paths
}

// writeContext writes a file, an executable, a symlink and a dir below
// dir, and returns their paths.
func writeContext(t *testing.T, dir string) []string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"d/a": 0o644, "d/x": 0o755} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("content of "+name), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a", filepath.Join(dir, "d/link")); err != nil {
		t.Fatal(err)
	}
	return []string{"d", "d/a", "d/link", "d/x"}
}

// TestSumsSeeEveryChange: after each change to a remembered input, even
// one that keeps its size and puts its mtime back, the digest is the
// content's again (hashWith compares with a read of every file).
func TestSumsSeeEveryChange(t *testing.T) {
	settle := shortSettle(t)
	dir, idx := t.TempDir(), t.TempDir()
	paths := writeContext(t, dir)
	at := func(name string) string { return filepath.Join(dir, name) }
	changes := []struct {
		what, path string
		change     func() error
	}{
		{"same-size content, mtime put back", "d/a", func() error {
			fi, err := os.Stat(at("d/a"))
			if err != nil {
				return err
			}
			if err := os.WriteFile(at("d/a"), []byte("CONTENT of d/a"), 0o644); err != nil {
				return err
			}
			return os.Chtimes(at("d/a"), fi.ModTime(), fi.ModTime())
		}},
		{"the exec bit", "d/x", func() error { return os.Chmod(at("d/x"), 0o644) }},
		{"a symlink's target", "d/link", func() error {
			if err := os.Remove(at("d/link")); err != nil {
				return err
			}
			return os.Symlink("x", at("d/link"))
		}},
		{"a file renamed over another of the same size", "d/a", func() error {
			if err := os.WriteFile(at("d/b"), []byte("c0ntent of d/a"), 0o644); err != nil {
				return err
			}
			return os.Rename(at("d/b"), at("d/a"))
		}},
	}
	settle()
	before, _ := hashWith(t, idx, dir, paths)
	for _, c := range changes {
		if _, hits := hashWith(t, idx, dir, paths); hits != len(paths) {
			t.Fatalf("before %s: %d of %d remembered", c.what, hits, len(paths))
		}
		if err := c.change(); err != nil {
			t.Fatal(err)
		}
		settle()
		after, _ := hashWith(t, idx, dir, paths)
		if after[c.path] == before[c.path] {
			t.Errorf("%s: %s has the digest it had before", c.what, c.path)
		}
		before = after
	}
}

// TestSumsForgetUnsettled: a file changed less than settleTime before it
// is hashed is read again by the next build, and its older sum forgotten.
func TestSumsForgetUnsettled(t *testing.T) {
	dir, idx, paths := rememberedContext(t)
	settleTime = time.Hour // every file changed within the hour: none settled
	if _, hits := hashWith(t, idx, dir, paths); hits != len(paths) {
		t.Fatalf("%d of %d remembered, want all: unchanged since", hits, len(paths))
	}
	if err := os.WriteFile(filepath.Join(dir, "d/a"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, hits := hashWith(t, idx, dir, paths); hits != len(paths)-1 {
		t.Errorf("%d of %d remembered, want all but d/a", hits, len(paths))
	}
	if _, hits := hashWith(t, idx, dir, paths); hits != len(paths)-1 {
		t.Errorf("the next build: %d of %d remembered, want all but d/a", hits, len(paths))
	}
	if s := OpenSums(idx, dir, false); s.old["d/a"] != (sum{}) {
		t.Errorf("d/a is remembered as %+v", s.old["d/a"])
	}
}

// TestSumsFile: a corrupt file of sums is read as empty and written
// again; entries no build used for sumsKeep are dropped, others kept.
func TestSumsFile(t *testing.T) {
	dir, idx, paths := rememberedContext(t)
	file := OpenSums(idx, dir, false).file
	if err := os.WriteFile(file, []byte(sumsMagic+"not gob"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, hits := hashWith(t, idx, dir, paths); hits != 0 {
		t.Errorf("a corrupt file: %d remembered, want 0", hits)
	}
	if _, hits := hashWith(t, idx, dir, paths); hits != len(paths) {
		t.Errorf("after a corrupt file: %d of %d remembered", hits, len(paths))
	}

	s := OpenSums(idx, dir, false)
	stale := s.old["d/a"]
	stale.Used = time.Now().Add(-sumsKeep - time.Hour).Unix()
	s.old["gone"] = stale
	recent := stale
	recent.Used = time.Now().Add(-sumsKeep + time.Hour).Unix()
	s.old["kept"] = recent
	s.changed = true
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	got := OpenSums(idx, dir, false).old
	if _, ok := got["gone"]; ok {
		t.Error("an entry unused for longer than sumsKeep was kept")
	}
	if _, ok := got["kept"]; !ok {
		t.Error("an entry used within sumsKeep was dropped")
	}
	if len(got) != len(paths)+1 {
		t.Errorf("%d entries, want %d: %v", len(got), len(paths)+1, slices.Sorted(maps.Keys(got)))
	}
}

// TestPruneSums: the sums of a context not built for longer than keep go,
// and so do temps; others stay, and with no keep every context's stays.
func TestPruneSums(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	for name, age := range map[string]time.Duration{"recent": time.Hour, "old": 48 * time.Hour, ".sums-123": time.Minute} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(sumsMagic), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	left := func() []string {
		t.Helper()
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return names
	}
	if err := PruneSums(dir, 0, now); err != nil {
		t.Fatal(err)
	}
	if got := left(); !slices.Equal(got, []string{"old", "recent"}) {
		t.Errorf("with no keep: %v left, want [old recent]", got)
	}
	if err := PruneSums(dir, 24*time.Hour, now); err != nil {
		t.Fatal(err)
	}
	if got := left(); !slices.Equal(got, []string{"recent"}) {
		t.Errorf("keeping a day: %v left, want [recent]", got)
	}
	if err := PruneSums(filepath.Join(dir, "missing"), time.Hour, now); err != nil {
		t.Errorf("no sums dir: %v", err)
	}
}

// TestSumsCtimeSettles: a file written just now with its mtime set an
// hour back (as tar x, cp -p and rsync -a leave it) is not remembered:
// its ctime is new.
func TestSumsCtimeSettles(t *testing.T) {
	dir, idx, paths := rememberedContext(t)
	settleTime = time.Hour // the new ctime, not the timing of the test, decides
	a := filepath.Join(dir, "d/a")
	old := time.Now().Add(-2 * time.Hour)
	if err := os.WriteFile(a, []byte("CONTENT of d/a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(a, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, "d"), old, old); err != nil {
		t.Fatal(err)
	}
	hashWith(t, idx, dir, paths)
	if _, ok := OpenSums(idx, dir, false).old["d/a"]; ok {
		t.Error("d/a, its ctime new, is remembered")
	}
}

// TestSumsReread: with reread (--no-cache) every file is read, and what
// is read is remembered for the next build; a build that reads nothing
// and refreshes no entry does not write the file of sums again.
func TestSumsReread(t *testing.T) {
	dir, idx, paths := rememberedContext(t)
	s := OpenSums(idx, dir, true)
	if _, hits := hashIn(t, s, dir, paths); hits != 0 {
		t.Errorf("reread: %d remembered, want 0", hits)
	}
	before, err := os.Stat(s.file)
	if err != nil {
		t.Fatal(err)
	}
	if _, hits := hashWith(t, idx, dir, paths); hits != len(paths) {
		t.Errorf("after a reread: %d of %d remembered", hits, len(paths))
	}
	after, err := os.Stat(s.file)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("a build that read no file wrote the file of sums again")
	}
}

// TestSumsPruneKeepsBuiltContexts: a build that reads no file still
// says the context was built, so PruneSums keeps its sums.
func TestSumsPruneKeepsBuiltContexts(t *testing.T) {
	dir, idx, paths := rememberedContext(t)
	file := OpenSums(idx, dir, false).file
	long := time.Now().Add(-13 * time.Hour)
	if err := os.Chtimes(file, long, long); err != nil {
		t.Fatal(err)
	}
	if _, hits := hashWith(t, idx, dir, paths); hits != len(paths) {
		t.Fatalf("%d of %d remembered", hits, len(paths))
	}
	if err := PruneSums(idx, 12*time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); err != nil {
		t.Errorf("the sums of a context just built: %v", err)
	}
}

// TestSumsSymlinkToAnotherFilesystem: a symlink is trusted by the
// filesystem it is on, not by its target's (/proc, not trusted), and its
// device's answer holds for the files beside it.
func TestSumsSymlinkToAnotherFilesystem(t *testing.T) {
	settle := shortSettle(t)
	dir, idx := t.TempDir(), t.TempDir()
	if err := os.Symlink("/proc/self", filepath.Join(dir, "proc")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), []byte("beside it"), 0o644); err != nil {
		t.Fatal(err)
	}
	settle()
	hashWith(t, idx, dir, []string{"proc"}) // the device's first file
	if _, hits := hashWith(t, idx, dir, []string{"proc", "file"}); hits != 1 {
		t.Errorf("%d remembered, want the symlink", hits)
	}
	if _, hits := hashWith(t, idx, dir, []string{"proc", "file"}); hits != 2 {
		t.Errorf("%d remembered, want both", hits)
	}
}

// TestSumsOnlyLocalFilesystems: this machine's temp dir is on a
// filesystem Sums trusts and /proc is not; a file on a filesystem it
// does not trust is read at every build.
func TestSumsOnlyLocalFilesystems(t *testing.T) {
	if local, ok := localFS(t.TempDir()); !local || !ok {
		t.Errorf("localFS(temp dir) = %t, %t; want a local filesystem", local, ok)
	}
	if local, ok := localFS("/proc"); local || !ok {
		t.Errorf("localFS(/proc) = %t, %t; want not local", local, ok)
	}
	settle := shortSettle(t)
	dir, idx := t.TempDir(), t.TempDir()
	paths := writeContext(t, dir)
	settle()
	fi, err := os.Lstat(dir)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := sumOf(fi)
	for range 2 {
		s := OpenSums(idx, dir, false)
		s.local[k.Dev] = false // as statfs says of NFS
		if _, hits := hashIn(t, s, dir, paths); hits != 0 {
			t.Errorf("%d remembered on a filesystem not trusted", hits)
		}
	}
}
