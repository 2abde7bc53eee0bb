package layers

import (
	"fmt"
	"strconv"
)

// Default limits of Store.Unpack, per layer. Real base layers pass them
// with room to spare: the largest public images (CUDA, ML frameworks) have
// layers of a few GiB and a few hundred thousand files.
const (
	// DefaultMaxLayerBytes bounds the bytes one layer may expand to, as
	// its tar headers declare them: 64 GiB.
	DefaultMaxLayerBytes int64 = 64 << 30
	// DefaultMaxLayerEntries bounds the entries of one layer: two million
	// (unpacking keeps each entry's path, about twice its length in
	// memory).
	DefaultMaxLayerEntries int64 = 2_000_000
	// NameBytesPerEntry bounds the bytes of the entries' names (paths and
	// link targets) of one layer, as this many bytes on average for each
	// entry Limits.MaxEntries allows (256 MiB for the default): the memory
	// unpacking holds for them, which a layer of a few MB of long names
	// would otherwise raise to GBs. Real layers average well under 100.
	NameBytesPerEntry int64 = 128
)

// Limits bounds what Store.Unpack lets one layer expand to, so that a
// hostile or broken base image cannot fill the disk: a few KiB of tar can
// declare a sparse file of a TiB, whose holes unpacking writes out in full.
// Sizes are checked from each tar header before the entry is written.
type Limits struct {
	// MaxBytes bounds the sum of the entry sizes the layer's headers
	// declare (a sparse file counts its full logical size). 0 means
	// DefaultMaxLayerBytes; negative means no limit.
	MaxBytes int64
	// MaxEntries bounds the number of entries in the layer. 0 means
	// DefaultMaxLayerEntries; negative means no limit.
	MaxEntries int64
}

// withDefaults returns l with its zero fields set to the defaults.
func (l Limits) withDefaults() Limits {
	if l.MaxBytes == 0 {
		l.MaxBytes = DefaultMaxLayerBytes
	}
	if l.MaxEntries == 0 {
		l.MaxEntries = DefaultMaxLayerEntries
	}
	return l
}

// LimitKind names what a layer exceeded.
type LimitKind string

// What a LimitError reports as exceeded.
const (
	// LimitBytes is Limits.MaxBytes (flag --max-layer-bytes).
	LimitBytes LimitKind = "bytes"
	// LimitEntries is Limits.MaxEntries (flag --max-layer-entries).
	LimitEntries LimitKind = "entries"
	// LimitNames is NameBytesPerEntry times Limits.MaxEntries.
	LimitNames LimitKind = "names"
	// LimitFreeSpace is the free space of the store's filesystem.
	LimitFreeSpace LimitKind = "free space"
)

// LimitError reports that a layer was refused by Store.Unpack because it
// would expand past a limit. Nothing of it is left in the store.
type LimitError struct {
	// Entry is the tar entry at which the limit was passed.
	Entry string
	// Kind says what was exceeded.
	Kind LimitKind
	// Limit is the limit passed: bytes for LimitBytes, LimitNames and
	// LimitFreeSpace, a count for LimitEntries.
	Limit int64
}

func (e *LimitError) Error() string {
	switch e.Kind {
	case LimitBytes:
		return fmt.Sprintf("entry %q: the layer expands to more than %s (raise the limit with --max-layer-bytes)", e.Entry, formatBytes(e.Limit))
	case LimitEntries:
		return fmt.Sprintf("entry %q: the layer has more than %d entries (raise the limit with --max-layer-entries)", e.Entry, e.Limit)
	case LimitNames:
		return fmt.Sprintf("entry %q: the names of the layer's entries hold more than %s, %d bytes on average for each entry --max-layer-entries allows (raise that limit)", e.Entry, formatBytes(e.Limit), NameBytesPerEntry)
	default:
		return fmt.Sprintf("entry %q: the layer needs more than the %s free on the layer store's filesystem (free some space, or use another --root)", e.Entry, formatBytes(e.Limit))
	}
}

// formatBytes writes n in binary units, e.g. "64 GiB", "1.5 MiB", "512 B".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	v := strconv.FormatFloat(float64(n)/float64(div), 'f', 1, 64)
	if len(v) > 2 && v[len(v)-2:] == ".0" {
		v = v[:len(v)-2]
	}
	return v + " " + "KMGTPE"[exp:exp+1] + "iB"
}
