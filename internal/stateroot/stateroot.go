// Package stateroot owns the on-disk layout of strata's state directory
// (--root): where layer blobs, snapshots, step mount points, runtime state,
// the cache index and cache-mount data live, and the lock that lets builds
// share the root while prune waits for them. Nothing else joins paths under
// the root, except inside Snapshots (layers/), which layers.Store owns.
//
// It also names what a build leaves under the root (or in /dev/shm) while it
// runs — mount points, containers, secret dirs — as KIND-PID.NS-RANDOM
// (internal/owner: its pid and pid namespace), so that the next build can
// tell the leftovers of a build killed with SIGKILL (Stale) from those of a
// build still running, or of another pid namespace's.
//
// Input: a directory. Output: paths, locks and names.
package stateroot

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/stratabuild/strata/internal/owner"
)

// Root is an opened state directory.
type Root struct {
	dir string
}

// Open opens the state directory dir, creating it and its layout when
// missing (mode 0700: layers hold every file of every image built). A
// state directory belongs to rootful or to rootless builds (see Rootless),
// whichever made it; the other kind is refused, with the fix.
func Open(dir string) (*Root, error) {
	if dir == "" {
		return nil, errors.New("no state directory (--root) given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	r := &Root{dir: abs}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("preparing state directory %s: %w", abs, err)
	}
	if err := r.checkKind(); err != nil {
		return nil, err
	}
	for _, d := range []string{r.Blobs(), r.Snapshots(), r.Mounts(), r.Runtime(), r.CacheIndex(), r.CacheMounts()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("preparing state directory %s: %w", abs, err)
		}
	}
	return r, nil
}

// OpenExisting opens dir only if it is already a state directory, or what
// a failed rm -rf left of one (see partlyRemoved): commands that clean up
// (prune) must not create one where a typo points.
func OpenExisting(dir string) (*Root, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("state directory %s: %w", dir, err)
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("state directory %s does not exist (check --root or STRATA_ROOT)", abs)
	}
	if _, err := os.Stat(filepath.Join(abs, "cache")); err != nil && !partlyRemoved(abs) {
		return nil, fmt.Errorf("%s is not a strata state directory (no cache/ in it; check --root or STRATA_ROOT)", abs)
	}
	return Open(abs)
}

// partlyRemoved reports whether dir holds what an rm -rf by its owner
// leaves of a rootless state directory: its layers/, whose snapshots hold
// files the user's subordinate ids own, which only a prune in the user
// namespace can remove, and nothing that is not a part of the layout.
func partlyRemoved(dir string) bool {
	des, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	layers := false
	for _, de := range des {
		switch de.Name() {
		case "layers":
			layers = de.IsDir() && layersDirOfOurs(filepath.Join(dir, "layers"))
		case "blobs", "cache", "mnt", "runc", kindFile:
		default:
			return false
		}
	}
	return layers
}

// layersDirOfOurs reports whether dir holds what a state directory's
// layers/ holds, and its snapshots.v2 or locks: not a project's own
// layers/ that a mistyped --root names.
func layersDirOfOurs(dir string) bool {
	des, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	ours := false
	for _, de := range des {
		switch de.Name() {
		case "snapshots.v2", "locks":
			ours = ours || de.IsDir()
		case "tmp", "snapshots":
		default:
			return false
		}
	}
	return ours
}

// Dir is the state directory itself.
func (r *Root) Dir() string { return r.dir }

// Blobs holds compressed layer blobs, named by their digest's hex: the
// layers steps committed and the base layers used so far.
func (r *Root) Blobs() string { return filepath.Join(r.dir, "blobs") }

// Snapshots is the layers.Store directory: unpacked layers by diffID.
func (r *Root) Snapshots() string { return filepath.Join(r.dir, "layers") }

// Mounts holds the mount points of running steps and copy sources.
func (r *Root) Mounts() string { return filepath.Join(r.dir, "mnt") }

// Runtime is the OCI runtime's state root (runc --root) and its bundles.
func (r *Root) Runtime() string { return filepath.Join(r.dir, "runc") }

// CacheIndex holds the local cache index, one file per key.
func (r *Root) CacheIndex() string { return filepath.Join(r.dir, "cache", "index") }

// CacheMounts holds the data of the recipe's cache mounts.
func (r *Root) CacheMounts() string { return filepath.Join(r.dir, "cache", "mounts") }

// ContextSums is the dir of the build contexts' remembered file digests
// (build/cache.Sums).
func (r *Root) ContextSums() string { return filepath.Join(r.dir, "cache", "sums") }

// CacheMount is the directory of the cache mount id: its data/ and lock.
func (r *Root) CacheMount(id string) string {
	return filepath.Join(r.CacheMounts(), hex.EncodeToString([]byte(id)))
}

// SecretDir is where a step's secrets are written for the time of the step:
// a tmpfs, so that their bytes stay in memory and never reach the disk.
var SecretDir = "/dev/shm"

// secretKind names secret dirs in SecretDir, which other programs share.
const secretKind = "strata_secret"

// lockFile is the build lock: shared by builds, exclusive for prune.
func (r *Root) lockFile() string { return filepath.Join(r.dir, "cache", "lock") }

// LockBuild takes the build lock shared: any number of builds run at once,
// and prune waits until none does. release must be called when the build
// ends.
func (r *Root) LockBuild() (release func(), err error) {
	return r.lock(syscall.LOCK_SH)
}

// LockExclusive takes the build lock exclusively, waiting for running
// builds to end (polling, so that ctx can stop the wait).
func (r *Root) LockExclusive(ctx context.Context) (release func(), err error) {
	f, err := lockWaiting(ctx, r.lockFile(), 100*time.Millisecond, "waiting for running builds to end", nil)
	if err != nil {
		return nil, err
	}
	return func() { f.Close() }, nil
}

// TryLockExclusive takes the build lock exclusively if no build holds
// it; ok is false (and release nil) if one does.
func (r *Root) TryLockExclusive() (release func(), ok bool, err error) {
	release, err = r.lock(syscall.LOCK_EX | syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return nil, false, nil
	}
	return release, err == nil, err
}

// lockWaiting opens the lock file path and takes an exclusive flock on
// it, trying every interval until ctx is done (a blocking flock cannot be
// stopped); the error of a wait ctx ended says waiting.
func lockWaiting(ctx context.Context, path string, interval time.Duration, waiting string, onWait func()) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for first := true; ; first = false {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		if first && onWait != nil {
			onWait()
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("%s: %w", waiting, ctx.Err())
		case <-time.After(interval):
		}
	}
}

func (r *Root) lock(how int) (func(), error) {
	f, err := os.OpenFile(r.lockFile(), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// OwnedName is a name for a temp dir or container that Stale can judge:
// KIND-OWNER-RANDOM, OWNER being this process's owner.ID (its pid and pid
// namespace). KIND holds no "-".
func OwnedName(kind string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%s-%s", kind, owner.ID(), hex.EncodeToString(b[:]))
}

// MkdirOwned makes a new directory in parent named like OwnedName.
func MkdirOwned(parent, kind string) (string, error) {
	return os.MkdirTemp(parent, kind+"-"+owner.ID()+"-")
}

// Stale reports whether name, made by OwnedName (with any KIND), belongs to
// a process that is gone (owner.Gone). Names of this process, of live
// processes, of another pid namespace's, and names not made by OwnedName
// are not stale. (A pid reused before the next build keeps its leftovers
// until that process ends.)
func Stale(name string) bool {
	parts := strings.SplitN(name, "-", 3)
	return len(parts) == 3 && owner.Gone(parts[1])
}

// StaleEntries lists the entries of dir whose names are Stale, as full paths.
func StaleEntries(dir string) []string {
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, de := range des {
		if Stale(de.Name()) {
			out = append(out, filepath.Join(dir, de.Name()))
		}
	}
	return out
}

// StaleSecretDirs lists the secret dirs of killed builds.
func StaleSecretDirs() []string {
	var out []string
	for _, p := range StaleEntries(SecretDir) {
		if strings.HasPrefix(filepath.Base(p), secretKind+"-") {
			out = append(out, p)
		}
	}
	return out
}

// LockCacheMount makes the data dir of cache mount id and takes its lock,
// waiting while another step (of any build) uses the same cache, until
// ctx is done. unlock must be called when the step ends. A step takes
// each id once (the lock is the open file's: a second one would wait on
// the first), and several in one order (see build's mounts). onWait (if
// set) is called once if the lock is taken: the step waits.
func (r *Root) LockCacheMount(ctx context.Context, id string, onWait func()) (data string, unlock func(), err error) {
	dir := r.CacheMount(id)
	data = filepath.Join(dir, "data")
	if _, err := os.Stat(data); errors.Is(err, fs.ErrNotExist) {
		// The cache's root, as a step sees it: 0755 whatever strata's
		// umask, as BuildKit makes it; a step may change it after.
		if err := errors.Join(os.MkdirAll(data, 0o755), os.Chmod(data, 0o755)); err != nil {
			return "", nil, err
		}
	}
	f, err := lockWaiting(ctx, filepath.Join(dir, "lock"), 50*time.Millisecond, "waiting for cache mount "+id+", used by another step", onWait)
	if err != nil {
		return "", nil, err
	}
	now := time.Now()
	_ = os.Chtimes(f.Name(), now, now) // its last use, for PruneCacheMounts
	return data, func() { f.Close() }, nil
}

// PruneCacheMounts removes the data of cache mounts unused for longer than
// keepDuration (if > 0), then, least recently used first, of those past
// keepBytes in all (if >= 0: with 0, of every one; < 0 is no limit). The
// caller holds the root's build lock exclusively, so no step uses a cache
// mount meanwhile.
func (r *Root) PruneCacheMounts(keepBytes int64, keepDuration time.Duration, now time.Time) (removed int, freed int64, err error) {
	des, err := os.ReadDir(r.CacheMounts())
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, 0, nil
		}
		return 0, 0, err
	}
	type mount struct {
		dir  string
		used time.Time
		size int64
	}
	var mounts []mount
	for _, de := range des {
		dir := filepath.Join(r.CacheMounts(), de.Name())
		m := mount{dir: dir, size: du(dir)}
		if fi, err := os.Stat(filepath.Join(dir, "lock")); err == nil {
			m.used = fi.ModTime()
		}
		mounts = append(mounts, m)
	}
	slices.SortFunc(mounts, func(a, b mount) int { return b.used.Compare(a.used) })
	var total int64
	for _, m := range mounts {
		drop := keepDuration > 0 && now.Sub(m.used) > keepDuration ||
			keepBytes >= 0 && (keepBytes == 0 || total+m.size > keepBytes)
		if !drop {
			total += m.size
			continue
		}
		if err := os.RemoveAll(m.dir); err != nil {
			return removed, freed, fmt.Errorf("removing cache mount data %s: %w", m.dir, err)
		}
		removed++
		freed += m.size
	}
	return removed, freed, nil
}

// du is the bytes of the regular files below dir.
func du(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// WriteSecret writes a step's secret into a private dir of SecretDir, 0400;
// remove deletes it, and the next build does if this one is killed.
func WriteSecret(content []byte) (file string, remove func(), err error) {
	dir, err := MkdirOwned(SecretDir, secretKind)
	if err != nil {
		return "", nil, err
	}
	remove = func() { os.RemoveAll(dir) }
	file = filepath.Join(dir, "secret")
	if err := os.WriteFile(file, content, 0o400); err != nil {
		remove()
		return "", nil, err
	}
	return file, remove, nil
}

// ReapStale removes what builds killed before they could clean up left in
// the root and in SecretDir: their step mount points (unmount detaches a
// mount still there) and their secret dirs. It reports each path removed
// and each it could not.
func (r *Root) ReapStale(unmount func(path string) error, removed func(path string), failed func(path string, err error)) {
	for _, p := range StaleEntries(r.Mounts()) {
		err := unmount(p)
		if err == nil {
			err = os.Remove(p)
		}
		if err != nil {
			failed(p, err)
			continue
		}
		removed(p)
	}
	for _, p := range StaleSecretDirs() {
		if err := os.RemoveAll(p); err != nil {
			failed(p, err)
			continue
		}
		removed(p)
	}
}
