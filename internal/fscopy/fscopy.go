// Package fscopy copies files from one root filesystem into another, the
// way `copy: … from: STAGE` needs: owners, modes (setuid, setgid, sticky
// included), extended attributes (file capabilities included), hardlinks,
// symlinks, devices, fifos and mtimes are kept, and every path is resolved
// inside its root, so nothing outside either root is read or written.
//
// Input: a source root (a read-only view of a stage or an image), source
// paths in it, a destination root (a step's mounted rootfs) and a
// destination path. Output: the copied tree, and Stats.
//
// security.selinux (the host's label) and trusted.overlay.* (overlayfs's
// own bookkeeping) are never copied.
package fscopy

import (
	"os"
	"time"
)

// Options change what is copied.
type Options struct {
	// UID and GID replace the owner of every copied entry and of created
	// parent dirs when OwnerSet; otherwise owners are kept (and created
	// parents are root's).
	UID, GID int
	OwnerSet bool
	// Mode, if set, replaces the permission bits (and setuid, setgid,
	// sticky) of every copied file and dir.
	Mode *os.FileMode
	// ModTime, if set, replaces every mtime (SOURCE_DATE_EPOCH).
	ModTime *time.Time
}

// Stats counts what a copy wrote.
type Stats struct {
	Files int64 // regular files, symlinks, devices and fifos
	Dirs  int64
	Links int64 // extra names of hardlinked files
	Bytes int64 // file content copied
}
