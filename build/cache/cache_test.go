package cache

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func baseInputs() Inputs {
	return Inputs{
		StepID: "strata.yaml::1", Parent: []string{"sha256:aa", "sha256:bb"},
		Env: []string{"A=1"}, User: "app", Workdir: "/src", Shell: []string{"/bin/sh", "-c"},
		Step: `{"text":"make"}`, Files: map[string]string{"a": "sha256:1", "b": "sha256:2"},
		Args: map[string]string{"V": "1"}, Base: "sha256:base",
	}
}

func TestKeySensitivity(t *testing.T) {
	base := baseInputs()
	key := base.Key()
	changes := []struct {
		name   string
		change func(*Inputs)
		same   bool
	}{
		{"parent", func(in *Inputs) { in.Parent = []string{"sha256:aa"} }, false},
		{"parent split differently", func(in *Inputs) { in.Parent = []string{"sha256:aa", "sha256:b", "b"} }, false},
		{"env", func(in *Inputs) { in.Env = []string{"A=2"} }, false},
		{"user", func(in *Inputs) { in.User = "root" }, false},
		{"workdir", func(in *Inputs) { in.Workdir = "/" }, false},
		{"shell", func(in *Inputs) { in.Shell = []string{"/bin/bash", "-c"} }, false},
		{"step", func(in *Inputs) { in.Step = `{"text":"make all"}` }, false},
		{"file content", func(in *Inputs) { in.Files = map[string]string{"a": "sha256:9", "b": "sha256:2"} }, false},
		{"file added", func(in *Inputs) { in.Files = map[string]string{"a": "sha256:1", "b": "sha256:2", "c": "sha256:3"} }, false},
		{"step id", func(in *Inputs) { in.StepID = "other.yaml::4" }, true},
		{"args", func(in *Inputs) { in.Args = map[string]string{"V": "2"} }, true},
		{"base", func(in *Inputs) { in.Base = "sha256:other" }, true},
	}
	for _, c := range changes {
		t.Run(c.name, func(t *testing.T) {
			in := baseInputs()
			c.change(&in)
			if got := in.Key() == key; got != c.same {
				t.Errorf("key unchanged = %v, want %v", got, c.same)
			}
		})
	}
}

func TestHashFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("d/a", "alpha", 0o644)
	write("d/x", "#!/bin/sh", 0o755)
	if err := os.Symlink("a", filepath.Join(dir, "d/link")); err != nil {
		t.Fatal(err)
	}
	paths := []string{"d", "d/a", "d/link", "d/x"}
	hash := func() map[string]string {
		t.Helper()
		h, err := HashFiles(dir, paths, nil)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	orig := hash()
	same := func(what string) {
		t.Helper()
		if got := hash(); fmt.Sprint(got) != fmt.Sprint(orig) {
			t.Errorf("%s changed the hashes", what)
		}
	}
	differs := func(what, path string) {
		t.Helper()
		if got := hash(); got[path] == orig[path] {
			t.Errorf("%s did not change the hash of %s", what, path)
		}
	}
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(dir, "d/a"), old, old)
	same("an mtime")
	os.Chmod(filepath.Join(dir, "d/a"), 0o664)
	same("a umask-dependent mode")
	os.Lchown(filepath.Join(dir, "d/a"), 1234, 1234)
	same("an owner")
	os.Chmod(filepath.Join(dir, "d/x"), 0o644)
	differs("dropping the exec bit", "d/x")
	os.Chmod(filepath.Join(dir, "d/x"), 0o755)
	write("d/a", "alpha2", 0o644)
	differs("new content", "d/a")
	write("d/a", "alpha", 0o644)
	os.Remove(filepath.Join(dir, "d/link"))
	os.Symlink("x", filepath.Join(dir, "d/link"))
	differs("a new symlink target", "d/link")
	os.Remove(filepath.Join(dir, "d/link"))
	os.Symlink("a", filepath.Join(dir, "d/link"))
	write("d/new", "n", 0o644)
	same("a new file in a dir (an input of its own, unless ignored)")
	os.Chmod(filepath.Join(dir, "d/a"), 0o655)
	same("exec bits for others than the owner (a copy makes it 0644)")
	os.Chmod(filepath.Join(dir, "d/a"), 0o754)
	differs("the owner's exec bit (a copy makes it 0755)", "d/a")
	os.Chmod(filepath.Join(dir, "d/a"), 0o644)

	// A copy keeps hardlinks between its inputs: d/b, the same bytes as
	// d/a, becomes a second name of it.
	write("d/b", "alpha", 0o644)
	paths = []string{"d", "d/a", "d/b", "d/link", "d/x"}
	orig = hash()
	if err := os.Remove(filepath.Join(dir, "d/b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "d/a"), filepath.Join(dir, "d/b")); err != nil {
		t.Fatal(err)
	}
	differs("a hardlink in place of a copy", "d/b")
	if got := hash(); got["d/a"] != orig["d/a"] {
		t.Error("the first name of a hardlinked file changed its hash")
	}
}

func TestIndexRoundTripAndConcurrency(t *testing.T) {
	dir := t.TempDir()
	ix, err := OpenLocal(dir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &Cache{Local: ix}
	if err := os.WriteFile(filepath.Join(dir, ".tmp-1.json"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !ix.Empty() || c.CanHit() {
		t.Error("an index with only a temp file is not Empty, or its cache CanHit")
	}
	if !(&Cache{Local: ix, From: []Store{ix}}).CanHit() {
		t.Error("a cache with a --cache-from store cannot hit")
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := baseInputs()
			in.Step = fmt.Sprint(i % 5) // five keys, each written four times at once
			e := &Entry{Key: in.Key(), Inputs: in, Layer: &Layer{DiffID: "sha256:d", Digest: "sha256:g", Size: int64(i)}}
			if err := ix.Put(context.Background(), e, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	entries, err := ix.Entries()
	if err != nil || len(entries) != 5 {
		t.Fatalf("%d entries (%v), want 5", len(entries), err)
	}
	for _, e := range entries {
		got, ok := ix.entry(e.Key)
		if !ok || got.Inputs.Step != e.Inputs.Step {
			t.Errorf("Get(%s) = %v, %v", e.Key, got, ok)
		}
	}
	if _, ok := ix.entry("sha256:missing"); ok {
		t.Error("a missing key hit")
	}
	if ix.Empty() || !c.CanHit() {
		t.Error("an index with entries is Empty, or its cache cannot hit")
	}
}

// TestKilledWriter: a process killed with SIGKILL while it writes entries
// leaves an index that still reads, where every entry is whole or absent.
func TestKilledWriter(t *testing.T) {
	if dir := os.Getenv("STRATA_CACHE_WRITER"); dir != "" {
		ix, err := OpenLocal(dir, dir)
		if err != nil {
			os.Exit(3)
		}
		big := strings.Repeat("x", 4<<20) // slow enough to be killed mid-write
		for i := 0; ; i++ {
			in := baseInputs()
			in.Step = fmt.Sprintf("%d %s", i, big)
			if err := ix.Put(context.Background(), &Entry{Key: in.Key(), Inputs: in}, nil); err != nil {
				os.Exit(4)
			}
		}
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestKilledWriter$")
	cmd.Env = append(os.Environ(), "STRATA_CACHE_WRITER="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Killed once it has written an entry (however slowly it starts on
	// a busy machine), in the middle of writing more.
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m, _ := filepath.Glob(filepath.Join(dir, "*.json")); len(m) > 0 {
			break
		}
	}
	time.Sleep(50 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	ix, err := OpenLocal(dir, dir)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ix.Entries()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := os.ReadDir(dir)
	t.Logf("after SIGKILL: %d whole entries, %d files (temp files of the killed write included)", len(entries), len(files))
	if len(entries) == 0 {
		t.Fatal("the writer was killed before it wrote anything; the test proves nothing")
	}
	for _, e := range entries {
		if e.Key != e.Inputs.Key() {
			t.Errorf("entry %s does not match its inputs", e.Key)
		}
	}
	in := baseInputs()
	if err := ix.Put(context.Background(), &Entry{Key: in.Key(), Inputs: in}, nil); err != nil {
		t.Errorf("Put after the crash: %v", err)
	}
	if _, ok := ix.entry(in.Key()); !ok {
		t.Error("the entry written after the crash is missing")
	}
}

func TestExplain(t *testing.T) {
	prev := &Entry{Inputs: baseInputs(), KeyVersion: keyVersion}
	tests := []struct {
		name   string
		change func(*Inputs)
		want   string
	}{
		{"step", func(in *Inputs) { in.Step = `{"text":"make all"}` }, `step text changed: "make" → "make all"`},
		{"arg", func(in *Inputs) { in.Args = map[string]string{"V": "2"}; in.Step = "x" }, `arg V: "1" → "2"`},
		{"env", func(in *Inputs) { in.Env = []string{"A=2"} }, "env A changed"},
		{"files", func(in *Inputs) { in.Files = map[string]string{"a": "sha256:9", "c": "sha256:3"} }, "files changed: a, added: c, removed: b"},
		{"base", func(in *Inputs) { in.Base = "sha256:newbase"; in.Parent = []string{"sha256:cc"} }, "base changed"},
		{"parent", func(in *Inputs) { in.Parent = []string{"sha256:aa", "sha256:cc"} }, "an earlier step's result differs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := baseInputs()
			tt.change(&in)
			if got := Explain(&in, prev); !strings.Contains(got, tt.want) {
				t.Errorf("Explain = %q, want it to hold %q", got, tt.want)
			}
		})
	}
	// An older strata's entry is not compared field by field: its
	// inputs were recorded otherwise.
	old := &Entry{Inputs: baseInputs()}
	changed := baseInputs()
	changed.Shell = nil
	if got := Explain(&changed, old); !strings.Contains(got, "another strata version's") || strings.Contains(got, "shell") {
		t.Errorf("Explain against an older strata's entry = %q", got)
	}
	in := baseInputs()
	if got := Explain(&in, nil); got != "no earlier build of this step" {
		t.Errorf("Explain without an earlier entry = %q", got)
	}
}

// noSnapshots is a snapshot store holding nothing.
type noSnapshots struct{}

func (noSnapshots) Snapshots() ([]digest.Digest, error)         { return nil, nil }
func (noSnapshots) Remove(context.Context, digest.Digest) error { return nil }

func TestPruneKeepsByDurationAndBytes(t *testing.T) {
	blobs := t.TempDir()
	ix, err := OpenLocal(t.TempDir(), blobs)
	if err != nil {
		t.Fatal(err)
	}
	for i, age := range []time.Duration{0, 2 * time.Hour, 10 * time.Hour} {
		in := baseInputs()
		in.Step = fmt.Sprint(i)
		hex := fmt.Sprintf("%064d", i)
		if err := os.WriteFile(filepath.Join(blobs, hex), make([]byte, 100), 0o644); err != nil {
			t.Fatal(err)
		}
		e := &Entry{Key: in.Key(), Inputs: in, Layer: &Layer{Digest: "sha256:" + hex, Size: 100}}
		if err := ix.Put(context.Background(), e, nil); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-age)
		os.Chtimes(ix.path(e.Key), when, when)
	}
	res, err := ix.Prune(context.Background(), PruneOptions{KeepDuration: 5 * time.Hour}, noSnapshots{})
	if err != nil {
		t.Fatal(err)
	}
	if res.EntriesRemoved != 1 || res.BlobsRemoved != 1 || res.BytesFreed != 100 {
		t.Errorf("--keep-duration 5h: %+v, want 1 entry and its 100-byte blob removed (the one unused for 10 h)", res)
	}
	res, err = ix.Prune(context.Background(), PruneOptions{KeepBytes: 150, LimitBytes: true}, noSnapshots{})
	if err != nil {
		t.Fatal(err)
	}
	if res.EntriesKept != 1 || res.BlobsRemoved != 1 {
		t.Errorf("--keep-bytes 150 kept %d entries of 100 bytes and removed %d blobs, want 1 and 1", res.EntriesKept, res.BlobsRemoved)
	}
}

// recordingSnapshots is a snapshot store holding snaps; Remove takes
// them out.
type recordingSnapshots struct{ snaps map[digest.Digest]bool }

func (s *recordingSnapshots) Snapshots() ([]digest.Digest, error) {
	var out []digest.Digest
	for d := range s.snaps {
		out = append(out, d)
	}
	return out, nil
}

func (s *recordingSnapshots) Remove(_ context.Context, d digest.Digest) error {
	delete(s.snaps, d)
	return nil
}

// TestPruneKeepBytesZero: --keep-bytes 0 (LimitBytes) and --all keep no
// entry, not even one whose step made no layer, nor the snapshots below
// it; a KeepBytes of 0 alone (the flag not given) keeps every one.
func TestPruneKeepBytesZero(t *testing.T) {
	for _, c := range []struct {
		name string
		opts PruneOptions
		kept int
	}{
		{"no limit", PruneOptions{}, 2},
		{"keep-bytes 0", PruneOptions{LimitBytes: true}, 0},
		{"all", PruneOptions{All: true, KeepBytes: 1 << 40, LimitBytes: true}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			blobs := t.TempDir()
			ix, err := OpenLocal(t.TempDir(), blobs)
			if err != nil {
				t.Fatal(err)
			}
			base, layer := digest.FromString("base"), digest.FromString("layer")
			snaps := &recordingSnapshots{snaps: map[digest.Digest]bool{base: true, layer: true}}
			hex := fmt.Sprintf("%064d", 1)
			if err := os.WriteFile(filepath.Join(blobs, hex), make([]byte, 100), 0o644); err != nil {
				t.Fatal(err)
			}
			in := baseInputs()
			in.Parent = []string{base.String()}
			withLayer := &Entry{Key: in.Key(), Inputs: in, Layer: &Layer{Digest: "sha256:" + hex, DiffID: layer.String(), Size: 100}}
			in.Step = "no layer"
			in.Parent = []string{base.String(), layer.String()}
			noLayer := &Entry{Key: in.Key(), Inputs: in}
			for _, e := range []*Entry{withLayer, noLayer} {
				if err := ix.Put(context.Background(), e, nil); err != nil {
					t.Fatal(err)
				}
			}
			res, err := ix.Prune(context.Background(), c.opts, snaps)
			if err != nil {
				t.Fatal(err)
			}
			if res.EntriesKept != c.kept || res.EntriesRemoved != 2-c.kept {
				t.Errorf("Prune(%+v) kept %d entries and removed %d, want %d kept of 2", c.opts, res.EntriesKept, res.EntriesRemoved, c.kept)
			}
			left, _ := os.ReadDir(blobs)
			if c.kept == 0 && (len(snaps.snaps) != 0 || len(left) != 0 || res.SnapshotsRemoved != 2) {
				t.Errorf("Prune(%+v) left snapshots %v and blobs %v", c.opts, snaps.snaps, left)
			}
			if c.kept == 2 && (len(snaps.snaps) != 2 || len(left) != 1) {
				t.Errorf("Prune(%+v) removed snapshots or blobs: left %v, %v", c.opts, snaps.snaps, left)
			}
		})
	}
}

// TestSeenUnchanged: what HashSeen saw of the inputs tells a write to one
// (even one that puts back its size and mtime), a file gone and a new
// hardlink between two inputs; not what leaves the content as it was (a
// chmod g+w, a hardlink made elsewhere), nor a file come into a dir.
func TestSeenUnchanged(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"d/a": "alpha", "b": "beta", "c": "alpha"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	paths := []string{"b", "c", "d", "d/a"}
	files, seen, err := HashSeen(dir, paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	unchanged := func(what string) {
		t.Helper()
		if err := seen.Unchanged(dir, files); err != nil {
			t.Errorf("Unchanged after %s: %v", what, err)
		}
	}
	changed := func(what, want string) {
		t.Helper()
		if err := seen.Unchanged(dir, files); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Unchanged after %s = %v, want an error naming %q", what, err, want)
		}
		files, seen, _ = HashSeen(dir, paths, nil)
	}
	unchanged("nothing")
	os.WriteFile(filepath.Join(dir, "d/ignored.tmp"), nil, 0o644)
	unchanged("a file came into a dir")
	os.Chmod(filepath.Join(dir, "b"), 0o664)
	unchanged("a chmod g+w")
	os.Link(filepath.Join(dir, "b"), filepath.Join(t.TempDir(), "elsewhere"))
	unchanged("a hardlink made outside the inputs")

	fi, _ := os.Stat(filepath.Join(dir, "d/a"))
	os.WriteFile(filepath.Join(dir, "d/a"), []byte("ALPHA"), 0o644)
	os.Chtimes(filepath.Join(dir, "d/a"), fi.ModTime(), fi.ModTime())
	changed("d/a was written", "d/a changed")
	os.Chmod(filepath.Join(dir, "b"), 0o764)
	changed("b's owner exec bit", "b changed")
	os.Remove(filepath.Join(dir, "c"))
	os.Link(filepath.Join(dir, "d/a"), filepath.Join(dir, "c"))
	os.WriteFile(filepath.Join(dir, "d/a"), []byte("alpha"), 0o644) // c's content again, now one file with d/a
	files, seen, _ = HashSeen(dir, paths, nil)
	os.Remove(filepath.Join(dir, "c"))
	os.WriteFile(filepath.Join(dir, "c"), []byte("alpha"), 0o644)
	changed("c, a hardlink of d/a, made a file of its own", "changed")
	os.Remove(filepath.Join(dir, "b"))
	changed("b was removed", "b")
	os.WriteFile(filepath.Join(dir, "b"), []byte("beta"), 0o644)

	// Where the lstat does not show a write — a second one within a
	// timestamp tick of a change just before the hashing, or a
	// filesystem whose attributes are cached (NFS, FUSE) — the file is
	// read again. The lstat is made to look unchanged here.
	rewrite := func(what string, edit func(*sum)) {
		t.Helper()
		files, seen, _ = HashSeen(dir, paths, nil)
		os.WriteFile(filepath.Join(dir, "b"), []byte("BETA"), 0o644)
		fi, _ := os.Lstat(filepath.Join(dir, "b"))
		now, _ := sumOf(fi)
		was := seen["b"]
		now.Digest, now.statNs, now.untrusted = was.Digest, now.Ctime+1, was.untrusted
		edit(&now)
		seen["b"] = now
		changed(what, "b changed")
		os.WriteFile(filepath.Join(dir, "b"), []byte("beta"), 0o644)
	}
	rewrite("a same-size write within a tick of a change before the hashing", func(*sum) {})
	rewrite("a write its filesystem's lstat does not show", func(s *sum) { s.statNs = s.Ctime + 2*settleTime.Nanoseconds(); s.untrusted = true })
}
