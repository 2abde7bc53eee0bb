package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	inroot "github.com/stratabuild/strata/internal/rootfs"
)

// Stubs are the mount targets (and their missing parents) that did not exist
// in a rootfs before a run. The runtime creates them as empty files or
// directories to mount on; Clean removes those still empty afterwards, so
// they never reach a layer.
type Stubs struct {
	rootfs  string
	paths   []string             // host paths, deepest first
	dirs    []string             // the missing parents of targets among paths, parents first
	parents map[string]time.Time // existing dir holding a stub → its mtime before the run
}

// RecordStubs records which of targets (absolute paths inside rootfs) are
// missing in rootfs, with their missing parents. Symlinks are followed inside
// rootfs the way the runtime follows them, so a dangling /etc/resolv.conf
// link records the file it points to.
func RecordStubs(rootfs string, targets []string) (*Stubs, error) {
	s := &Stubs{rootfs: rootfs, parents: map[string]time.Time{}}
	seen := map[string]bool{}
	for _, t := range targets {
		missing, err := missingPaths(rootfs, t)
		if err != nil {
			return nil, fmt.Errorf("recording mount stub %s: %w", t, err)
		}
		if len(missing) > 0 {
			parent := filepath.Dir(missing[0])
			if fi, err := os.Stat(parent); err == nil {
				s.parents[parent] = fi.ModTime()
			}
		}
		for i, p := range missing {
			if !seen[p] {
				seen[p] = true
				s.paths = append(s.paths, p)
				if i < len(missing)-1 {
					s.dirs = append(s.dirs, p)
				}
			}
		}
	}
	// Children before parents, so a parent emptied by removing its stub
	// children is removed too.
	slices.SortStableFunc(s.paths, func(a, b string) int {
		return strings.Count(b, "/") - strings.Count(a, "/")
	})
	return s, nil
}

// MakeParents creates the missing parents of the targets, root-owned and
// 0755, as the runtime would create them but for its umask, which is
// strata's: under umask 077 a step writing beside a cache mount's target
// kept parents no other user could enter. Clean removes them as it removes
// the runtime's stubs.
func (s *Stubs) MakeParents() error {
	for _, d := range s.dirs {
		// With its own missing parents: one may be another target (a
		// cache at /a, a tmpfs at /a/b/c), recorded as a stub but not as
		// a parent.
		rel, err := filepath.Rel(s.rootfs, d)
		if err != nil {
			return err
		}
		if err := makeRootDirs(s.rootfs, "/"+rel); err != nil {
			return fmt.Errorf("making mount stub /%s: %w", rel, err)
		}
	}
	return nil
}

// makeRootDirs creates dir inside rootfs when missing, with its missing
// parents, as docker creates a WORKDIR: root's and 0755, whatever
// strata's umask.
func makeRootDirs(rootfs, dir string) error {
	missing, err := missingPaths(rootfs, dir)
	if err != nil {
		return err
	}
	for _, p := range missing {
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(p, 0o755); err != nil {
			return err
		}
		if err := os.Lchown(p, 0, 0); err != nil {
			return err
		}
	}
	return nil
}

// Paths returns the recorded stub paths, relative to the rootfs, deepest
// first.
func (s *Stubs) Paths() []string {
	out := make([]string, len(s.paths))
	for i, p := range s.paths {
		out[i], _ = filepath.Rel(s.rootfs, p)
	}
	return out
}

// Clean removes each recorded stub that is now an empty directory or an
// empty regular file; anything else the run put there is kept. It then
// restores the mtime of the directories that held removed stubs: to its
// value before the run when nothing but the stubs touched the directory
// (so an overlay copy-up of /etc matches the lower /etc), else to its value
// before the removal.
func (s *Stubs) Clean() error {
	var errs []error
	mtimes := map[string]time.Time{} // parent → mtime before the first removal in it
	newest := map[string]time.Time{} // parent → newest mtime of a stub removed from it
	for _, p := range s.paths {
		if !s.unmoved(p) {
			continue // its parent is a link the step made: not followed out
		}
		fi, err := os.Lstat(p)
		if err != nil || !isEmpty(p, fi) {
			continue // never created, already gone, or kept by the run
		}
		parent := filepath.Dir(p)
		if _, ok := mtimes[parent]; !ok {
			if pfi, err := os.Stat(parent); err == nil {
				mtimes[parent] = pfi.ModTime()
			}
		}
		if fi.ModTime().After(newest[parent]) {
			newest[parent] = fi.ModTime()
		}
		if err := os.Remove(p); err != nil {
			errs = append(errs, fmt.Errorf("removing mount stub: %w", err))
		}
	}
	for parent, m := range mtimes {
		if before, ok := s.parents[parent]; ok && !m.After(newest[parent]) {
			m = before
		}
		// A parent that was itself a stub may be gone: ignore.
		_ = os.Chtimes(parent, time.Time{}, m)
	}
	return errors.Join(errs...)
}

// unmoved reports whether p's parent resolves inside the rootfs to
// itself: no parent of p is a symlink. A step may have replaced a stub's
// parent with a link to any host path (mv /newdir /x && ln -s /etc
// /newdir): Clean, run after the step's processes are gone, must then
// leave p alone rather than follow the link out of the rootfs.
func (s *Stubs) unmoved(p string) bool {
	parent := filepath.Dir(p)
	rel, err := filepath.Rel(s.rootfs, parent)
	if err != nil {
		return false
	}
	host, err := inroot.Resolve(s.rootfs, rel, inroot.Confine)
	return err == nil && host == parent // no link on the way, in or out
}

// isEmpty reports whether p is an empty directory or an empty regular file.
func isEmpty(p string, fi fs.FileInfo) bool {
	switch {
	case fi.IsDir():
		entries, err := os.ReadDir(p)
		return err == nil && len(entries) == 0
	case fi.Mode().IsRegular():
		return fi.Size() == 0
	}
	return false
}

// missingPaths resolves target inside rootfs, following symlinks as if
// rootfs were "/", and returns the host paths of the components that do not
// exist, parents first. A component that exists but is not a directory ends
// the walk: the runtime will report that itself.
func missingPaths(rootfs, target string) ([]string, error) {
	_, missing, err := inroot.Missing(rootfs, target, inroot.Clamp)
	return missing, err
}
