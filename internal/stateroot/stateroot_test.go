package stateroot

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratabuild/strata/internal/testutil"
)

func TestLockExclusiveWaitsForBuilds(t *testing.T) {
	r, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	release, err := r.LockBuild()
	if err != nil {
		t.Fatal(err)
	}
	other, err := r.LockBuild()
	if err != nil {
		t.Fatalf("a second build could not share the root: %v", err)
	}
	other()
	done := make(chan error, 1)
	go func() {
		rel, err := r.LockExclusive(context.Background())
		if err == nil {
			rel()
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("the exclusive lock was taken while a build held the root: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	hold, _ := r.LockBuild()
	defer hold()
	if _, err := r.LockExclusive(ctx); err == nil || !strings.Contains(err.Error(), "waiting for running builds") {
		t.Errorf("LockExclusive with a cancelled context = %v", err)
	}
}

func TestStale(t *testing.T) {
	mine := OwnedName("step")
	if Stale(mine) {
		t.Errorf("Stale(%q) = true for this process's name", mine)
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := strings.Replace(mine, "-"+strconv.Itoa(os.Getpid())+".", "-"+strconv.Itoa(cmd.Process.Pid)+".", 1)
	if dead == mine || !Stale(dead) {
		t.Errorf("Stale(%q) = false for an exited process's name", dead)
	}
	// A living pid namespace's (another container on this state dir) is
	// not judged from here, whatever pid it names.
	_, rest, _ := strings.Cut(dead, ".")
	other := strings.Replace(dead, "."+rest, "."+testutil.ForeignPIDNS(t)+"-"+strings.SplitN(rest, "-", 2)[1], 1)
	if other == dead || Stale(other) {
		t.Errorf("Stale(%q) = true for a living pid namespace's name", other)
	}
	for _, name := range []string{"layers", "step", "x-y", "strata-notapid-abc"} {
		if Stale(name) {
			t.Errorf("Stale(%q) = true for a name OwnedName did not make", name)
		}
	}
}

func TestOpenExistingRefusesATypo(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "typo")
	if _, err := OpenExisting(missing); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("OpenExisting(%s) = %v, want a refusal", missing, err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("OpenExisting created %s", missing)
	}
	plain := t.TempDir()
	if _, err := OpenExisting(plain); err == nil || !strings.Contains(err.Error(), "not a strata state directory") {
		t.Errorf("OpenExisting(an unrelated dir) = %v", err)
	}
	r, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenExisting(r.Dir()); err != nil {
		t.Errorf("OpenExisting(a state dir) = %v", err)
	}
	// What rm -rf leaves of a rootless state dir (the snapshots its
	// subordinate ids own) opens, so that prune can remove it; a project
	// with a layers/ dir among its files does not.
	if err := os.MkdirAll(filepath.Join(r.Dir(), "layers", "snapshots.v2", "sha256", "x", "fs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(r.Dir(), "cache")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(r.Dir(), kindFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenExisting(r.Dir()); err != nil {
		t.Errorf("OpenExisting(a state dir rm -rf left layers/ of) = %v", err)
	}
	project := t.TempDir()
	for _, p := range []string{"layers", "cache.go"} {
		if err := os.Mkdir(filepath.Join(project, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := OpenExisting(project); err == nil || !strings.Contains(err.Error(), "not a strata state directory") {
		t.Errorf("OpenExisting(a dir holding layers/ and more) = %v", err)
	}
	if _, err := os.Stat(filepath.Join(project, "blobs")); err == nil {
		t.Error("OpenExisting made the layout in a dir it refused")
	}
	// Nor a dir holding only a layers/ of its own (a mistyped --root):
	// a state dir's layers/ has snapshots.v2 or locks.
	odd := t.TempDir()
	for _, p := range []string{"layers/snapshots", "layers/tmp/work"} {
		if err := os.MkdirAll(filepath.Join(odd, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := OpenExisting(odd); err == nil || !strings.Contains(err.Error(), "not a strata state directory") {
		t.Errorf("OpenExisting(a dir holding only a layers/ of its own) = %v", err)
	}
}

func TestPruneCacheMounts(t *testing.T) {
	r, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, id := range []string{"/var/cache/apt", "/root/.npm", "/go/pkg"} {
		data, unlock, err := r.LockCacheMount(t.Context(), id, nil)
		if err != nil {
			t.Fatal(err)
		}
		unlock()
		if err := os.WriteFile(filepath.Join(data, "blob"), make([]byte, 1000), 0o644); err != nil {
			t.Fatal(err)
		}
		used := now.Add(-time.Duration(i) * 48 * time.Hour) // 0, 2 and 4 days ago
		if err := os.Chtimes(filepath.Join(r.CacheMount(id), "lock"), used, used); err != nil {
			t.Fatal(err)
		}
	}
	removed, freed, err := r.PruneCacheMounts(-1, 72*time.Hour, now)
	if err != nil || removed != 1 || freed != 1000 {
		t.Errorf("--keep-duration 72h: removed %d (%d bytes), %v; want the one unused for 4 days", removed, freed, err)
	}
	if _, err := os.Stat(r.CacheMount("/go/pkg")); err == nil {
		t.Error("/go/pkg's data is still there")
	}
	removed, _, err = r.PruneCacheMounts(1500, 0, now)
	if err != nil || removed != 1 {
		t.Errorf("--keep-bytes 1500: removed %d, %v; want the least recently used one", removed, err)
	}
	if _, err := os.Stat(r.CacheMount("/var/cache/apt")); err != nil {
		t.Errorf("the most recently used cache mount went: %v", err)
	}
	if removed, _, _ = r.PruneCacheMounts(1, 0, now); removed != 1 {
		t.Errorf("--keep-bytes 1 removed %d, want the last one", removed)
	}
	// An empty cache mount fits in any limit but 0: --keep-bytes 0 (and
	// --all) keep no cache mount.
	for _, id := range []string{"/empty", "/empty2"} {
		if _, unlock, err := r.LockCacheMount(t.Context(), id, nil); err != nil {
			t.Fatal(err)
		} else {
			unlock()
		}
	}
	if removed, _, _ = r.PruneCacheMounts(1, 0, now); removed != 0 {
		t.Errorf("--keep-bytes 1 removed %d empty cache mounts, want none", removed)
	}
	if removed, _, _ = r.PruneCacheMounts(0, 0, now); removed != 2 {
		t.Errorf("--keep-bytes 0 removed %d empty cache mounts, want both", removed)
	}
	if des, err := os.ReadDir(r.CacheMounts()); err != nil || len(des) != 0 {
		t.Errorf("--keep-bytes 0 left %d cache mounts (%v)", len(des), err)
	}
}

// TestOpenNewRootAtOnce: builds started together on a new state dir all
// open it (the kind file is never seen half-written).
func TestOpenNewRootAtOnce(t *testing.T) {
	for i := range 100 {
		dir := filepath.Join(t.TempDir(), "root")
		errs := make(chan error, 4)
		for range 4 {
			go func() { _, err := Open(dir); errs <- err }()
		}
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", i, err)
			}
		}
	}
}

// TestOpenRootWithEmptyKind: a kind file an older strata left empty (it
// wrote the file in place and was stopped) is made again, not refused.
func TestOpenRootWithEmptyKind(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, kindFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatalf("Open of a state dir with an empty kind file: %v", err)
	}
	want := kindRootful
	if Rootless() {
		want = kindRootless
	}
	if b, err := os.ReadFile(filepath.Join(dir, kindFile)); err != nil || string(b) != want+"\n" {
		t.Errorf("kind file %q, %v; want %q", b, err, want+"\n")
	}
}

// TestCacheMountWaitSaid: a step waiting for a cache mount another step
// uses is told once, and gets it when the other lets it go.
func TestCacheMountWaitSaid(t *testing.T) {
	r, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, unlock, err := r.LockCacheMount(t.Context(), "gocache", nil)
	if err != nil {
		t.Fatal(err)
	}
	waits := 0
	go func() { time.Sleep(200 * time.Millisecond); unlock() }()
	_, unlock2, err := r.LockCacheMount(t.Context(), "gocache", func() { waits++ })
	if err != nil {
		t.Fatal(err)
	}
	unlock2()
	if waits != 1 {
		t.Errorf("told %d times of the wait, want once", waits)
	}
	_, unlock3, err := r.LockCacheMount(t.Context(), "gocache", func() { t.Error("told of a wait for a free cache mount") })
	if err != nil {
		t.Fatal(err)
	}
	unlock3()
}
