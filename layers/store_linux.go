package layers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/owner"
	"github.com/stratabuild/strata/internal/rootfs"
)

// Store keeps one snapshot dir per diffID under its root:
//
//	root/snapshots.v2/<algo>/<hex>/ a dir usable as an overlay lower dir
//	root/locks/<algo>-<hex>.lock   flock held while a snapshot is made
//	root/tmp/<kind>-<rand>/        unpacks and upper dirs in progress,
//	root/tmp/<kind>-<rand>.lock    each flocked by the process that owns it
//	root/unsynced/<boot>/...       snapshots not yet known to be on disk
//
// Any number of processes may share one root. Snapshots are published
// without a sync; see unsynced_linux.go for how a restart of the machine
// is survived.
type Store struct {
	root    string
	log     *slog.Logger
	limits  Limits
	boot    string        // the boot id
	settled chan struct{} // closed when the background sync is done; nil: none
	// discards are the upper dirs being removed in the background.
	discards sync.WaitGroup
}

// snapshotsDir holds the snapshots. It was "snapshots" until a snapshot
// made from a step's upper dir could hold dirs its layer does not (dirs
// the step only touched): shared by diffID with another chain, such a
// snapshot put them into that chain's steps and images. Those are never
// used again; RetireOldSnapshots removes them.
const snapshotsDir = "snapshots.v2"

// OldSnapshots reports whether the store at root still has the
// snapshots of an older strata (see snapshotsDir).
func OldSnapshots(root string) bool {
	_, err := os.Lstat(filepath.Join(root, "snapshots"))
	return err == nil
}

// RetireOldSnapshots moves the snapshots of an older strata (see
// snapshotsDir) into the store's temp area, where the next OpenStore
// removes them. Call it holding the state root's build lock exclusively:
// an older strata's build may be using them.
func RetireOldSnapshots(root string) error {
	old := filepath.Join(root, "snapshots")
	if !OldSnapshots(root) {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o700); err != nil {
		return fmt.Errorf("retiring old snapshots: %w", err)
	}
	dst, err := os.MkdirTemp(filepath.Join(root, "tmp"), "retired-")
	if err != nil {
		return fmt.Errorf("retiring old snapshots: %w", err)
	}
	// A dir in tmp without its lock file is stale: OpenStore removes it.
	if err := os.Rename(old, filepath.Join(dst, "snapshots")); err != nil {
		os.Remove(dst)
		return fmt.Errorf("retiring old snapshots: %w", err)
	}
	return nil
}

// OpenStore opens (creating if needed) the store at root and removes temp
// dirs that no live process owns: leftovers of interrupted unpacks and
// steps. It discards the snapshots that were not known to be on disk when
// the machine restarted, and syncs those of this boot in the background
// (call Close to wait for it).
func OpenStore(root string, log *slog.Logger) (*Store, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("opening layer store %s: %w", root, err)
	}
	for _, d := range []string{snapshotsDir, "locks", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("opening layer store %s: %w", root, err)
		}
	}
	boot, err := owner.BootID()
	if err != nil {
		return nil, fmt.Errorf("opening layer store %s: %w", root, err)
	}
	s := &Store{root: root, log: discardIfNil(log), boot: boot}
	if err := s.cleanTmp(); err != nil {
		return nil, fmt.Errorf("opening layer store %s: %w", root, err)
	}
	if err := s.discardUnsynced(); err != nil {
		return nil, fmt.Errorf("opening layer store %s: %w", root, err)
	}
	s.startSettle()
	return s, nil
}

// SetLimits sets what Unpack lets one layer expand to; zero fields mean
// the defaults (DefaultMaxLayerBytes, DefaultMaxLayerEntries). Call it
// before the store is used: it is not synchronized with Unpack.
func (s *Store) SetLimits(l Limits) { s.limits = l }

// Root returns the store's root dir.
func (s *Store) Root() string { return s.root }

func (s *Store) snapshotDir(d digest.Digest) string {
	return filepath.Join(s.root, snapshotsDir, string(d.Algorithm()), d.Encoded())
}

// Lookup returns the snapshot dir of diffID if the store has it.
func (s *Store) Lookup(diffID digest.Digest) (dir string, ok bool) {
	if diffID.Validate() != nil {
		return "", false
	}
	dir = s.snapshotDir(diffID)
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return "", false
	}
	return dir, true
}

// Unpack extracts the uncompressed layer tar into the snapshot of diffID and
// returns its dir. If the snapshot exists, it is returned and tar is not
// read. Otherwise the tar is extracted into a temp dir, its digest checked
// against diffID, and the dir renamed into place, so an interrupted or
// corrupt unpack never leaves a snapshot behind.
//
// The layer is bounded by the store's Limits and by the free space of its
// filesystem, checked from each tar header before the entry is written:
// past one, Unpack returns a *LimitError and leaves nothing behind.
//
// Whiteouts become 0/0 char devices and opaque markers become
// trusted.overlay.opaque=y. Entries cannot write outside the snapshot: paths
// and symlinks resolve inside it. A 0/0 char device in the tar is refused
// (in a lower dir it would read as a whiteout), and so are trusted.overlay.*
// xattrs; other trusted.* xattrs are kept.
//
// In a user namespace (a rootless build) opaque markers become
// user.overlay.opaque=y instead, and the layer is refused, naming the
// entry, when an owner lies outside the namespace's id maps
// (*userns.UnmappedError), or an entry has a trusted.* xattr (only root
// can set one) or a user.overlay.* one; device nodes other than whiteouts
// are left out, as the kernel lets no user namespace make them (the base
// layer itself is reused as it is, so images keep them).
func (s *Store) Unpack(ctx context.Context, diffID digest.Digest, r io.Reader) (dir string, err error) {
	if err := diffID.Validate(); err != nil {
		return "", fmt.Errorf("unpacking layer %q: %w", diffID, err)
	}
	if dir, ok := s.Lookup(diffID); ok {
		return dir, nil
	}
	unlock, err := s.lockSnapshot(ctx.Done(), diffID)
	if err != nil {
		return "", fmt.Errorf("unpacking layer %s: %w", diffID, err)
	}
	defer unlock()
	if dir, ok := s.Lookup(diffID); ok {
		return dir, nil
	}
	start := time.Now()
	tmp, err := s.newTemp("unpack")
	if err != nil {
		return "", fmt.Errorf("unpacking layer %s: %w", diffID, err)
	}
	defer func() { _ = tmp.remove() }()
	b, err := newBudget(tmp.dir, s.limits)
	if err != nil {
		return "", fmt.Errorf("unpacking layer %s: measuring free space: %w", diffID, err)
	}
	if err := extract(ctx, s.log, tmp.dir, diffID, r, b); err != nil {
		return "", fmt.Errorf("unpacking layer %s: %w", diffID, err)
	}
	dir, err = s.publish(tmp.dir, diffID)
	if err != nil {
		return "", fmt.Errorf("unpacking layer %s: %w", diffID, err)
	}
	s.log.Debug("unpacked layer", "diffID", diffID, "dir", dir, "took", time.Since(start))
	return dir, nil
}

// extract applies the tar to dir within b and checks that what it read
// hashes to diffID.
func extract(ctx context.Context, log *slog.Logger, dir string, diffID digest.Digest, r io.Reader, b *budget) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	u, err := newUnpacker(b)
	if err != nil {
		return err
	}
	tr, sum := hashing(r, diffID.Algorithm())
	if err := newExtractor(dir, u, log).apply(ctx, tr); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, tr); err != nil {
		return fmt.Errorf("reading tar: %w", err)
	}
	if got := sum(); got != diffID {
		return fmt.Errorf("content has diffID %s", got)
	}
	return setTrustedXattrs(dir, u.trusted)
}

// A HashedTar is a layer tar that hashes itself as it is made (commit's
// StreamLayer gives one, hashed as it is decompressed): Unpack asks it
// for the digest of what was read instead of hashing it again.
type HashedTar interface {
	io.Reader
	// TarDigest is the digest of the whole stream, once it has been
	// read to its end.
	TarDigest() digest.Digest
}

// hashing returns r to be read to its end, and what then returns the
// digest of all it gave.
func hashing(r io.Reader, algo digest.Algorithm) (io.Reader, func() digest.Digest) {
	if h, ok := r.(HashedTar); ok {
		if algo == digest.Canonical {
			return r, h.TarDigest
		}
	}
	d := algo.Digester()
	return io.TeeReader(r, d.Hash()), d.Digest
}

// setTrustedXattrs sets the trusted.* xattrs archive.Apply refuses to set,
// resolving each path inside dir as archive.Apply resolves it.
func setTrustedXattrs(dir string, byName map[string]map[string]string) error {
	for name, xattrs := range byName {
		p, err := rootfs.ResolveParent(dir, name, rootfs.Clamp)
		if err != nil {
			return err
		}
		for k, v := range xattrs {
			if err := unix.Lsetxattr(p, k, []byte(v), 0); err != nil {
				return fmt.Errorf("setting xattr %s on %q: %w", k, name, err)
			}
		}
	}
	return nil
}

// publish renames dir to the snapshot of diffID, marked as not synced
// (see unsynced_linux.go). The caller holds the snapshot's lock.
func (s *Store) publish(dir string, diffID digest.Digest) (string, error) {
	if err := s.markUnsynced(diffID); err != nil {
		return "", err
	}
	final := s.snapshotDir(diffID)
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return "", err
	}
	if err := os.Rename(dir, final); err != nil {
		return "", err
	}
	return final, nil
}

// NewUpper makes an empty upper dir and work dir inside the store.
func (s *Store) NewUpper(ctx context.Context) (*Upper, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tmp, err := s.newTemp("upper")
	if err != nil {
		return nil, fmt.Errorf("making upper dir: %w", err)
	}
	u := &Upper{Dir: filepath.Join(tmp.dir, "fs"), Work: filepath.Join(tmp.dir, "work"), tmp: tmp}
	for _, d := range []string{u.Dir, u.Work} {
		// 0755 whatever strata's umask: the upper dir is the root a step sees.
		if err := errors.Join(os.Mkdir(d, 0o755), os.Chmod(d, 0o755)); err != nil {
			_ = tmp.remove()
			return nil, fmt.Errorf("making upper dir: %w", err)
		}
	}
	return u, nil
}

// Commit makes the upper dir the snapshot of diffID by renaming it (no copy)
// and releases the rest of u. If the store already has that snapshot, u is
// discarded, in the background (see Close). The upper dir must hold exactly
// the layer: diff it with Diff (without KeepUpper) first.
func (s *Store) Commit(u *Upper, diffID digest.Digest) (dir string, err error) {
	if err := diffID.Validate(); err != nil {
		return "", fmt.Errorf("committing layer %q: %w", diffID, err)
	}
	if u.tmp == nil {
		return "", fmt.Errorf("committing layer %s: upper dir already committed or discarded", diffID)
	}
	unlock, err := s.lockSnapshot(nil, diffID)
	if err != nil {
		return "", fmt.Errorf("committing layer %s: %w", diffID, err)
	}
	defer unlock()
	if dir, ok := s.Lookup(diffID); ok {
		s.discardLater(u)
		return dir, nil
	}
	dir, err = s.publish(u.Dir, diffID)
	if err != nil {
		return "", fmt.Errorf("committing layer %s: %w", diffID, err)
	}
	return dir, u.Discard()
}

// discardLater removes what is left of u in the background: an upper dir
// made again (a --no-cache build) is as big as its layer, and removing
// it need not hold up the next step. Close waits for it; a process killed
// meanwhile leaves a temp dir the next OpenStore removes.
func (s *Store) discardLater(u *Upper) {
	tmp := u.tmp
	u.tmp = nil
	s.discards.Add(1)
	go func() {
		defer s.discards.Done()
		if err := tmp.remove(); err != nil {
			s.log.Warn("discarding an upper dir", "dir", tmp.dir, "err", err)
		}
	}()
}

// Discard removes what is left of u. It is safe to call more than once.
func (u *Upper) Discard() error {
	if u.tmp == nil {
		return nil
	}
	err := u.tmp.remove()
	u.tmp = nil
	if err != nil {
		return fmt.Errorf("discarding upper dir: %w", err)
	}
	return nil
}

// lockSnapshot takes the flock of diffID's snapshot, waiting for other
// processes (polling, so done can stop the wait; nil waits for ever).
func (s *Store) lockSnapshot(done <-chan struct{}, d digest.Digest) (unlock func(), err error) {
	name := filepath.Join(s.root, "locks", string(d.Algorithm())+"-"+d.Encoded()+".lock")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", name, err)
		}
		select {
		case <-done:
			f.Close()
			return nil, context.Canceled
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// tempDir is a dir under root/tmp owned by this process through the flock
// on its lock file, created first and removed last.
type tempDir struct {
	dir  string
	lock *os.File
}

func (s *Store) newTemp(kind string) (*tempDir, error) {
	f, err := os.CreateTemp(filepath.Join(s.root, "tmp"), kind+"-*.lock")
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	t := &tempDir{dir: strings.TrimSuffix(f.Name(), ".lock"), lock: f}
	if err := os.Mkdir(t.dir, 0o700); err != nil {
		_ = t.remove()
		return nil, err
	}
	return t, nil
}

func (t *tempDir) remove() error {
	err := os.RemoveAll(t.dir)
	if err == nil {
		err = os.Remove(t.lock.Name())
	}
	t.lock.Close()
	return err
}

// cleanTmp removes temp dirs whose lock no process holds.
func (s *Store) cleanTmp() error {
	tmp := filepath.Join(s.root, "tmp")
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := filepath.Join(tmp, e.Name())
		if e.IsDir() {
			// A dir without its lock file lost its owner: the lock is
			// created before the dir and removed after it.
			if _, err := os.Lstat(name + ".lock"); errors.Is(err, fs.ErrNotExist) {
				s.log.Debug("removing stale temp dir", "dir", name)
				if err := os.RemoveAll(name); err != nil {
					return err
				}
			}
			continue
		}
		base, ok := strings.CutSuffix(name, ".lock")
		if !ok {
			continue
		}
		f, err := os.OpenFile(name, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // removed by its owner meanwhile
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			s.log.Debug("removing stale temp dir", "dir", base)
			err = os.RemoveAll(base)
			if err == nil {
				err = os.Remove(name)
			}
		}
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// Snapshots lists the diffIDs the store holds.
func (s *Store) Snapshots() ([]digest.Digest, error) {
	var out []digest.Digest
	algos, err := os.ReadDir(filepath.Join(s.root, snapshotsDir))
	if err != nil {
		return nil, err
	}
	for _, a := range algos {
		entries, err := os.ReadDir(filepath.Join(s.root, snapshotsDir, a.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			d := digest.NewDigestFromEncoded(digest.Algorithm(a.Name()), e.Name())
			if d.Validate() == nil {
				out = append(out, d)
			}
		}
	}
	return out, nil
}

// Remove deletes the snapshot of diffID. It first renames it into the temp
// area, under the snapshot's lock, so that no build ever sees half of it;
// a build that has it mounted keeps its view (the caller makes sure none
// is running, see the cache's build lock).
func (s *Store) Remove(ctx context.Context, diffID digest.Digest) error {
	if err := diffID.Validate(); err != nil {
		return err
	}
	unlock, err := s.lockSnapshot(ctx.Done(), diffID)
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.removeLocked(diffID); err != nil {
		return err
	}
	s.dropMarkers(diffID)
	return nil
}

// removeLocked is Remove for a caller holding the snapshot's lock.
func (s *Store) removeLocked(diffID digest.Digest) error {
	tmp, err := s.newTemp("remove")
	if err != nil {
		return err
	}
	if err := os.Rename(s.snapshotDir(diffID), filepath.Join(tmp.dir, "snapshot")); err != nil {
		_ = tmp.remove()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("removing snapshot %s: %w", diffID, err)
	}
	return tmp.remove()
}
