// Package layers owns strata's filesystem layers on disk.
//
// Inputs: uncompressed layer tars keyed by their diffID (Store.Unpack), a
// stack of snapshot dirs to mount (Mount), and the upper dir a step wrote
// (Diff, Store.Commit).
//
// Outputs: snapshot dirs usable as overlay lower dirs (whiteouts as 0/0 char
// devices, opaque dirs as trusted.overlay.opaque=y, or user.overlay.opaque=y
// rootless), overlay mounts, and the
// layer tar of one step: an upper dir diffed against its lower stack, with
// deterministic headers, written to an io.Writer.
//
// Base layers are untrusted input: Store.Unpack bounds what one layer may
// expand to (Limits: declared bytes, entries, and the free space of the
// store's filesystem), checked from each tar header before the entry is
// written, and refuses the layer with a *LimitError past a bound. It
// extracts into the new, empty snapshot dir with an extractor of its own,
// which leaves the tree containerd's archive.Apply leaves (names through
// the layer's symlinks resolved inside the dir the same way) with far
// fewer syscalls, as it knows what the dir holds (the tests check it
// against archive.Apply).
//
// A step goes: Store.NewUpper, Mount (snapshots top first), run, Unmount,
// Diff (which also trims the upper dir to what the tar holds), then
// Store.Commit to make the upper dir the snapshot of the tar's diffID.
//
// Crash safety: a snapshot is made in a temp dir and published by one
// rename, so no process ever sees half of one, whatever happens to the
// process making it. It is not synced to disk first (a syncfs per
// snapshot cost whole seconds on the critical path of a build): instead
// an empty marker, named by the current boot id, is created outside the
// snapshot just before the rename. OpenStore discards the snapshots whose
// markers are of an earlier boot — the machine restarted, maybe without
// writing them whole — so they are unpacked again from their blobs when
// needed, and it syncs the filesystem once in the background to retire
// the markers of this boot older than a minute (whose data the kernel has
// most likely written back by then). Store.Close waits for that sync. For
// the same reason steps' overlays are mounted volatile: overlay would
// otherwise sync the whole upper filesystem when it is unmounted.
//
// Rootless: in a user namespace (internal/userns.Inside, as a build by a
// user without root runs), overlay is mounted with userxattr and opaque
// dirs are marked with user.overlay.opaque instead of
// trusted.overlay.opaque; whiteouts stay 0/0 char devices. Owners are the
// namespace's ids, the ids the image sees: Unpack and Diff refuse one the
// id maps cannot represent (*userns.UnmappedError, naming the file), and
// Unpack refuses trusted.* xattrs, which only root can set. The layers
// made are the same bytes as root makes. A store belongs to one kind of
// build: each kind would misread the other's markers.
//
// The package knows diffIDs only as digests; it knows nothing of registries,
// manifests or recipes. Everything here but the types needs Linux; other
// systems get errors.ErrUnsupported.
package layers
