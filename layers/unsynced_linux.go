package layers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Snapshots are published without a sync: a whole-filesystem syncfs per
// snapshot would put every dirty page of the filesystem on the critical
// path of each unpack and each step. Crash safety is kept this way:
//
//	root/unsynced/<boot id>/<algo>-<hex>   an empty file per snapshot
//	                                       published since the last sync
//
// publish creates the marker, named in a directory of the current boot
// (/proc/sys/kernel/random/boot_id), before it renames the snapshot into
// place; the marker is outside the snapshot, which stays exactly the
// layer (it is an overlay lower dir). Within one boot a snapshot whose
// data is not on disk yet is still whole in the page cache: a killed
// build loses nothing. Only a restart of the machine can lose it, so:
//
//   - OpenStore discards the snapshot of every marker of another boot
//     (the machine restarted, perhaps uncleanly, before a sync): it is
//     made again from its layer blob when a step needs it;
//   - OpenStore also syncs the filesystem once, in the background, when
//     markers of this boot are older than settleAge, and then removes
//     them: their snapshots are on disk. Close waits for it. By then the
//     kernel has most likely written their data back already (it does
//     within dirty_expire_centisecs, 30 s by default), so the sync has
//     little to write and does not slow the build it runs beside; a
//     snapshot that was not yet settled when the machine restarted is
//     unpacked again, from its blob, once.
//
// A marker and the rename after it are both metadata changes of the same
// filesystem; the journalling filesystems overlay is used on (ext4, xfs,
// btrfs) never make a rename durable without the changes before it.
const unsyncedDir = "unsynced"

// settleAge is how old a marker must be before the background sync may
// remove it (its snapshot's data was written before the marker was made,
// so a sync started later covers it): old enough that the kernel has
// written the data back on its own.
const settleAge = time.Minute

func markerName(d digest.Digest) string { return string(d.Algorithm()) + "-" + d.Encoded() }

// markUnsynced records that the snapshot of d is about to be published
// without a sync.
func (s *Store) markUnsynced(d digest.Digest) error {
	dir := filepath.Join(s.root, unsyncedDir, s.boot)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, markerName(d)), os.O_CREATE|os.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	// A marker left by an earlier snapshot of d gets this one's time.
	now := time.Now()
	return errors.Join(f.Close(), os.Chtimes(f.Name(), now, now))
}

// dropMarkers removes the markers of d in every boot's directory; the
// caller holds the snapshot's lock and has removed the snapshot.
func (s *Store) dropMarkers(d digest.Digest) {
	boots, _ := os.ReadDir(filepath.Join(s.root, unsyncedDir))
	for _, b := range boots {
		_ = os.Remove(filepath.Join(s.root, unsyncedDir, b.Name(), markerName(d)))
	}
}

// discardUnsynced removes the snapshots that were published in another
// boot and never synced, and their markers.
func (s *Store) discardUnsynced() error {
	boots, err := os.ReadDir(filepath.Join(s.root, unsyncedDir))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, b := range boots {
		if b.Name() == s.boot {
			continue
		}
		dir := filepath.Join(s.root, unsyncedDir, b.Name())
		markers, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		for _, m := range markers {
			algo, hex, ok := strings.Cut(m.Name(), "-")
			d := digest.NewDigestFromEncoded(digest.Algorithm(algo), hex)
			if !ok || d.Validate() != nil {
				_ = os.Remove(filepath.Join(dir, m.Name()))
				continue
			}
			if err := s.discard(d, filepath.Join(dir, m.Name())); err != nil {
				return err
			}
		}
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// discard removes the snapshot of d, published in another boot and never
// synced, unless marker went meanwhile (another process discarded it).
func (s *Store) discard(d digest.Digest, marker string) error {
	unlock, err := s.lockSnapshot(nil, d)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Lstat(marker); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := s.removeLocked(d); err != nil {
		return err
	}
	s.log.Info("discarded a snapshot the machine may not have written whole before it restarted; it is unpacked again when needed", "diffID", d)
	return os.Remove(marker)
}

// startSettle syncs the store's filesystem in the background if markers
// of this boot are older than settleAge, then removes those markers.
func (s *Store) startSettle() {
	dir := filepath.Join(s.root, unsyncedDir, s.boot)
	markers, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var old []string
	for _, m := range markers {
		if fi, err := m.Info(); err == nil && time.Since(fi.ModTime()) > settleAge {
			old = append(old, filepath.Join(dir, m.Name()))
		}
	}
	if len(old) == 0 {
		return
	}
	s.settled = make(chan struct{})
	go func() {
		defer close(s.settled)
		if err := syncfs(s.root); err != nil {
			s.log.Warn("syncing the layer store", "err", err)
			return
		}
		for _, m := range old {
			_ = os.Remove(m)
		}
		s.log.Debug("synced the layer store", "snapshots", len(old))
	}()
}

// Close waits for the background sync OpenStore may have started, and
// for the upper dirs Commit discards in the background.
func (s *Store) Close() {
	if s.settled != nil {
		<-s.settled
	}
	s.discards.Wait()
}

func syncfs(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
