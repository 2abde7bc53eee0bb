// Package fscopy is strata's one file-copy capability: what a `copy` step
// does, from the build context or from another stage's or an image's root
// filesystem, into a step's rootfs, with docker COPY's semantics.
//
// Two policies:
//   - FromContext: the build context as the recipe asks. Nothing outside
//     the context is read (a source or symlink leaving it is an error),
//     the ignore file's patterns exclude entries, owners are the step's
//     (0:0 unless it says), modes are normalised (0755 for dirs and
//     executables, 0644 for other files, unless the step gives one) so that
//     a checkout's umask never changes a layer, and xattrs are not copied.
//   - FromRoot: a stage's or an image's filesystem, with everything
//     preserved: owners, modes (setuid, setgid, sticky included), extended
//     attributes (file capabilities included), devices and fifos; paths
//     resolve inside the source root as if it were "/".
//
// Both keep hardlinks within a copy, copy symlinks as symlinks, set mtimes
// (or the epoch the step gives) once the contents are written, and resolve
// every destination path inside the destination root, so nothing outside
// it is written. security.selinux and overlay-private xattrs are never
// copied.
//
// Input: a source directory, source paths (globs allowed), a destination
// root and path. Output: the copied tree, and Stats.
package fscopy

import (
	"os"
	"time"
)

// Policy is how a copy treats what it reads; see the package doc.
type Policy int

// The policies.
const (
	FromRoot Policy = iota
	FromContext
)

// Options change what is copied.
type Options struct {
	Policy Policy
	// Ignore excludes entries of a FromContext copy (nil: none).
	Ignore *Ignore
	// UID and GID are the owner of every copied entry and created parent
	// dir: always for FromContext, when OwnerSet for FromRoot (otherwise
	// its owners are kept and created parents are root's).
	UID, GID int
	OwnerSet bool
	// Mode, if set, replaces the permission bits (and setuid, setgid,
	// sticky) of every copied file and dir.
	Mode *os.FileMode
	// ModTime, if set, replaces every mtime (the build epoch).
	ModTime *time.Time
}

// Stats counts what a copy wrote.
type Stats struct {
	Files int64 // regular files, symlinks, devices and fifos
	Dirs  int64
	Links int64 // extra names of hardlinked files
	Bytes int64 // file content copied
}
