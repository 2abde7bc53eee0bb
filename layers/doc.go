// Package layers owns strata's filesystem layers on disk.
//
// Inputs: uncompressed layer tars keyed by their diffID (Store.Unpack), a
// stack of snapshot dirs to mount (Mount), and the upper dir a step wrote
// (Diff, Store.Commit).
//
// Outputs: snapshot dirs usable as overlay lower dirs (whiteouts as 0/0 char
// devices, opaque dirs as trusted.overlay.opaque=y), overlay mounts, and the
// layer tar of one step: an upper dir diffed against its lower stack, with
// deterministic headers, written to an io.Writer.
//
// The package knows diffIDs only as digests; it knows nothing of registries,
// manifests or recipes.
package layers
