// Package imagediff says what differs between two OCI or Docker images, and
// renders the answer as text for people or as JSON for scripts. It is the
// engine of `strata diff`, the tool for "why is my rebuild not
// reproducible".
//
// Input: two Images (a ggcr v1.Image each, named by the reference the user
// gave). Output: a Result — the manifest fields and config fields that
// differ, then the layers aligned by position: a layer whose diffID is the
// same on both sides is "same", never downloaded or read when both sides
// name the same blob, read only to check its diffID when they name two
// (the same content compressed differently, or a forged claim); a layer that
// differs is read once per side as an uncompressed tar stream and the paths
// added, removed or changed are listed with what changed (content, size,
// mode, owner, mtime, xattrs, link target, type, …). Whiteouts and opaque
// markers are entries of their own. Only per-entry metadata and a SHA-256 of
// each file's content are kept, never the contents.
//
// Result.WriteText and Result.WriteJSON are the two renderings. The JSON is
// the Result struct itself; its field names are a contract scripts may rely
// on.
package imagediff
