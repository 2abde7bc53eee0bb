package imagediff

import (
	"encoding/json"
	"io"
)

// Result is what differs between image A and image B. Encoded as JSON
// (WriteJSON) it is the documented output of `strata diff --format json`.
type Result struct {
	// A and B name the two images.
	A Side `json:"a"`
	B Side `json:"b"`
	// Identical is true when the manifests have the same digest, or when
	// no difference was found (Fields empty and every layer "same" with
	// the same blob).
	Identical bool `json:"identical"`
	// ManifestCompared is false when one side has no registry manifest
	// (a docker-archive), so manifest fields and layer blobs were not
	// compared, only the config and the layers' contents.
	ManifestCompared bool `json:"manifestCompared"`
	// Fields are the manifest and config fields that differ: the
	// manifest's first (its layer count last of them), then the config's,
	// each in sorted order. rootfs.diff_ids are not listed here: Layers
	// compares them.
	Fields []FieldChange `json:"fields"`
	// Layers are the layers aligned by position, from the bottom one
	// (index 0) up to the top of the taller image.
	Layers []Layer `json:"layers"`
}

// Side names one of the two images.
type Side struct {
	// Ref is the reference as the user gave it.
	Ref string `json:"ref"`
	// Digest is the manifest digest, "" when the image has no registry
	// manifest (docker-archive).
	Digest string `json:"digest,omitempty"`
	// ConfigDigest is the digest of the config blob.
	ConfigDigest string `json:"configDigest"`
}

// WriteJSON writes r as one indented JSON document: the Result struct, the
// documented output of `strata diff --format json`.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// FieldChange is one manifest or config field that differs.
type FieldChange struct {
	// Path names the field: manifest fields start with "manifest."
	// ("manifest.mediaType", `manifest.annotations["k"]`,
	// "manifest.layers" for the layer count, "manifest.layers[2].mediaType");
	// config fields are their JSON path in the config file ("created",
	// "architecture", "config.Env", `config.Labels["k"]`,
	// "history[3].created_by"). Arrays of strings (Env, Cmd, …) are
	// compared whole; arrays of objects (history) entry by entry.
	Path string `json:"path"`
	// A and B are the field's JSON values; a side is absent when the
	// field is absent in that image.
	A json.RawMessage `json:"a,omitempty"`
	B json.RawMessage `json:"b,omitempty"`
	// Note explains a change that is in the encoding only, e.g. the
	// config's digest differs although every field is the same.
	Note string `json:"note,omitempty"`
}

// Layer statuses.
const (
	// LayerSame: both images have this layer, with the same diffID. In
	// the same blob (or in a docker-archive, whose blobs are not known)
	// it was not read; in two blobs both were read, to check that each
	// holds that content (a blob that does not is an error).
	LayerSame = "same"
	// LayerChanged: both images have a layer here, with different
	// diffIDs; Changes says how their entries differ.
	LayerChanged = "changed"
	// LayerAdded: only B has a layer at this position; it was not read.
	LayerAdded = "added"
	// LayerRemoved: only A has a layer at this position; it was not read.
	LayerRemoved = "removed"
)

// Layer is the comparison of the layers at one position.
type Layer struct {
	// Index is the position, 0 for the bottom layer.
	Index int `json:"index"`
	// Status is LayerSame, LayerChanged, LayerAdded or LayerRemoved.
	Status string `json:"status"`
	// A and B describe the layer in each image; absent on the side that
	// has no layer at Index.
	A *LayerBlob `json:"a,omitempty"`
	B *LayerBlob `json:"b,omitempty"`
	// Changes are the entries that differ (LayerChanged only), sorted by
	// path.
	Changes []PathChange `json:"changes,omitempty"`
	// Note explains a changed layer whose entries are all equal: the tar
	// streams differ in entry order or encoding only.
	Note string `json:"note,omitempty"`
}

// LayerBlob describes a layer of one image.
type LayerBlob struct {
	// DiffID is the digest of the uncompressed tar.
	DiffID string `json:"diffID"`
	// Digest, MediaType and Size describe the blob as the manifest lists
	// it; empty when the image has no registry manifest.
	Digest    string `json:"digest,omitempty"`
	MediaType string `json:"mediaType,omitempty"`
	Size      int64  `json:"size,omitempty"`
}

// Kinds of PathChange.
const (
	// Added: the entry is only in B's layer.
	Added = "added"
	// Removed: the entry is only in A's layer.
	Removed = "removed"
	// Changed: both layers have the entry, with different attributes.
	Changed = "changed"
)

// Entry types, as PathChange.Type gives them.
const (
	TypeFile     = "file"
	TypeDir      = "dir"
	TypeSymlink  = "symlink"
	TypeHardlink = "hardlink"
	TypeChar     = "char"
	TypeBlock    = "block"
	TypeFifo     = "fifo"
	// TypeWhiteout is a ".wh.NAME" entry: the layer deletes Path.
	TypeWhiteout = "whiteout"
	// TypeOpaque is a ".wh..wh..opq" entry: the layer hides everything
	// below the directory Path that lower layers hold.
	TypeOpaque = "opaque"
)

// PathChange is one layer entry that differs.
type PathChange struct {
	// Path is the entry's absolute path ("/etc/app.conf"). For a whiteout
	// it is the path deleted, for an opaque marker its directory.
	Path string `json:"path"`
	// Kind is Added, Removed or Changed.
	Kind string `json:"kind"`
	// Type is the entry's type (B's for Changed): one of the Type
	// constants, or "tar type 'X'" for another tar type flag.
	Type string `json:"type"`
	// Link is the target of a symlink or hardlink (Added and Removed).
	Link string `json:"link,omitempty"`
	// Attrs are the attributes that differ (Changed only), in the
	// order AttrChange lists them; xattr and pax sorted by name.
	Attrs []AttrChange `json:"attrs,omitempty"`
}

// AttrChange is one attribute of an entry that differs. A and B are
// rendered as text; the attributes, in the order they are listed:
//
//	type     "file", "dir", … (the Type constants)
//	content  "sha256:HEX" of a regular file's bytes
//	size     decimal bytes
//	mode     the octal mode of the tar header, "0755" (with the file
//	         type bits some writers add, "40755")
//	owner    "UID:GID"
//	uname, gname   the owner names in the tar header
//	mtime, atime, ctime   RFC 3339 with nanoseconds, UTC ("" when unset)
//	link     the link target
//	device   "MAJOR:MINOR" of a char or block device
//	xattr    the value as a Go-quoted string (Name: the attribute);
//	         a side is "" when the attribute is absent
//	pax      a PAX record not covered above (Name: its key)
//	name     the raw tar name ("./etc/x" vs "etc/x")
//	format   the tar header format: "USTAR", "PAX", "GNU"
//
// name and format are listed only when nothing else of the entry differs.
type AttrChange struct {
	Attr string `json:"attr"`
	Name string `json:"name,omitempty"`
	A    string `json:"a"`
	B    string `json:"b"`
}
