package layers

import (
	"archive/tar"
	"math"

	"golang.org/x/sys/unix"
)

// budget counts what a layer's tar headers declare against the limits and
// the free space of the filesystem it is unpacked on.
type budget struct {
	limits         Limits // defaults applied
	free, block    int64  // free bytes for unprivileged use, block size; free < 0: unknown
	bytes, entries int64
	names          int64 // bytes of the entries' names and link targets
	blocks         int64 // bytes the data takes on disk, whole blocks
}

// newBudget measures the free space of dir's filesystem. The reserved
// blocks (root's) are left alone: a build should not take the system's
// last blocks.
func newBudget(dir string, l Limits) (*budget, error) {
	b := &budget{limits: l.withDefaults(), free: -1}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil, err
	}
	if st.Blocks > 0 && st.Bsize > 0 {
		b.block = st.Bsize
		b.free = int64(st.Bavail) * st.Bsize
	}
	return b, nil
}

// add counts hdr and returns a *LimitError when the layer passes a limit
// with it, before anything of hdr is written.
func (b *budget) add(hdr *tar.Header) error {
	b.entries++
	b.names += int64(len(hdr.Name) + len(hdr.Linkname))
	b.bytes = addSat(b.bytes, hdr.Size)
	if b.block > 0 && hdr.Size > 0 {
		n := hdr.Size / b.block
		if hdr.Size%b.block != 0 {
			n++
		}
		if n > math.MaxInt64/b.block {
			b.blocks = math.MaxInt64
		} else {
			b.blocks = addSat(b.blocks, n*b.block)
		}
	}
	switch {
	case b.limits.MaxEntries > 0 && b.entries > b.limits.MaxEntries:
		return &LimitError{Entry: hdr.Name, Kind: LimitEntries, Limit: b.limits.MaxEntries}
	case b.limits.MaxEntries > 0 && b.names > b.limits.MaxEntries*NameBytesPerEntry:
		return &LimitError{Entry: hdr.Name, Kind: LimitNames, Limit: b.limits.MaxEntries * NameBytesPerEntry}
	case b.limits.MaxBytes > 0 && b.bytes > b.limits.MaxBytes:
		return &LimitError{Entry: hdr.Name, Kind: LimitBytes, Limit: b.limits.MaxBytes}
	case b.free >= 0 && b.blocks > b.free:
		return &LimitError{Entry: hdr.Name, Kind: LimitFreeSpace, Limit: b.free}
	}
	return nil
}

// addSat adds two non-negative numbers, stopping at math.MaxInt64 where
// the sum would wrap (tar sizes go up to it).
func addSat(a, b int64) int64 {
	if b > math.MaxInt64-a {
		return math.MaxInt64
	}
	return a + b
}
