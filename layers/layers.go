package layers

import (
	"log/slog"
	"time"
)

// Upper is a fresh, empty upper dir and its overlay work dir, both inside
// the store (same filesystem, so Store.Commit can rename Dir into place).
type Upper struct {
	Dir  string // the overlay upper dir; becomes the snapshot on Commit
	Work string // the overlay work dir

	tmp *tempDir
}

// MountOptions says what Mount stacks where.
type MountOptions struct {
	Lowers []string // read-only snapshot dirs, top first; empty means scratch
	Upper  string   // writable upper dir
	Work   string   // empty work dir on the same filesystem as Upper
	Target string   // existing dir to mount the merged view on
}

// DiffOptions says what Diff compares and how it writes.
type DiffOptions struct {
	// Upper is the upper dir of an unmounted overlay.
	Upper string
	// Lowers is the lower stack the upper dir was mounted over, top first.
	Lowers []string
	// Epoch, when set, clamps every mtime in the tar to at most Epoch.
	Epoch *time.Time
	// Skip, when set, leaves out a path and everything below it. It gets
	// the path as seen inside the image, e.g. "/etc/hosts".
	Skip func(path string) bool
	// KeepUpper leaves the upper dir untouched. By default Diff edits the
	// upper dir after writing the tar so that it holds exactly what the tar
	// holds (it drops unchanged copy-ups, whiteouts of nothing, skipped
	// paths, overlay-private xattrs and opaque markers over nothing), which
	// is what Store.Commit needs to turn it into a snapshot other images
	// can share.
	KeepUpper bool
	// TrimOnly makes Diff only trim the upper dir, as it does after
	// writing a tar, and count the changes: it writes no tar (w may be
	// nil) and reads no file content but what tells an unchanged copy-up
	// from a change. The upper dir is left exactly as a Diff writing the
	// tar leaves it, so a later Diff of it with KeepUpper writes that tar.
	// It cannot be combined with KeepUpper.
	TrimOnly bool
	// Log receives debug records; nil discards them.
	Log *slog.Logger
}

// DiffStats counts the entries of a diff. A path that existed in the lower
// stack is Modified, one that did not is Added; Deleted counts whiteouts.
// Parent dirs written only to hold a change are not counted.
type DiffStats struct {
	Added, Modified, Deleted int
}

// Empty reports whether the diff changed nothing.
func (s DiffStats) Empty() bool { return s.Added+s.Modified+s.Deleted == 0 }

func discardIfNil(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
