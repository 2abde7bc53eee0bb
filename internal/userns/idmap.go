package userns

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Range maps Count ids from Inside (in the namespace) to Outside (on the
// host), as one line of /proc/PID/uid_map does.
type Range struct {
	Inside, Outside, Count uint32
}

// IDMap is a uid or gid map: the ranges of ids a namespace can represent.
type IDMap []Range

// Contains reports whether id (as seen inside) is mapped.
func (m IDMap) Contains(id uint32) bool {
	_, ok := m.Outside(id)
	return ok
}

// Outside returns the host id of the inside id, and whether it is mapped.
func (m IDMap) Outside(id uint32) (uint32, bool) {
	for _, r := range m {
		if id >= r.Inside && uint64(id) < uint64(r.Inside)+uint64(r.Count) {
			return r.Outside + (id - r.Inside), true
		}
	}
	return 0, false
}

// Inside returns the inside id of the host id, and whether it is mapped.
func (m IDMap) Inside(id uint32) (uint32, bool) {
	for _, r := range m {
		if id >= r.Outside && uint64(id) < uint64(r.Outside)+uint64(r.Count) {
			return r.Inside + (id - r.Outside), true
		}
	}
	return 0, false
}

// Size is the number of ids the map holds.
func (m IDMap) Size() uint64 {
	var n uint64
	for _, r := range m {
		n += uint64(r.Count)
	}
	return n
}

// String writes the map as "inside:outside:count" ranges, comma-separated.
func (m IDMap) String() string {
	parts := make([]string, len(m))
	for i, r := range m {
		parts[i] = fmt.Sprintf("%d:%d:%d", r.Inside, r.Outside, r.Count)
	}
	return strings.Join(parts, ",")
}

// args is the map as newuidmap and newgidmap take it after the pid.
func (m IDMap) args() []string {
	var out []string
	for _, r := range m {
		out = append(out, strconv.FormatUint(uint64(r.Inside), 10),
			strconv.FormatUint(uint64(r.Outside), 10), strconv.FormatUint(uint64(r.Count), 10))
	}
	return out
}

// procFormat is the map as /proc/PID/uid_map takes it.
func (m IDMap) procFormat() string {
	var b strings.Builder
	for _, r := range m {
		fmt.Fprintf(&b, "%d %d %d\n", r.Inside, r.Outside, r.Count)
	}
	return b.String()
}

// isIdentity reports whether m maps every id to itself: the map of the
// initial user namespace.
func (m IDMap) isIdentity() bool {
	return len(m) == 1 && m[0].Inside == 0 && m[0].Outside == 0 && m[0].Count == 4294967295
}

// parseMap reads a map in /proc/PID/uid_map's format.
func parseMap(r io.Reader) (IDMap, error) {
	var m IDMap
	s := bufio.NewScanner(r)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("bad id map line %q", s.Text())
		}
		var v [3]uint32
		for i := range f {
			n, err := strconv.ParseUint(f[i], 10, 32)
			if err != nil {
				return nil, fmt.Errorf("bad id map line %q", s.Text())
			}
			v[i] = uint32(n)
		}
		m = append(m, Range{Inside: v[0], Outside: v[1], Count: v[2]})
	}
	return m, s.Err()
}

// Maps are the uid and gid maps of a namespace.
type Maps struct {
	UIDs, GIDs IDMap
}

// OwnIDOnly reports whether the maps hold only the user's own ids (no
// subordinate ranges): then files owned by anyone else cannot be
// represented.
func (m Maps) OwnIDOnly() bool { return m.UIDs.Size() <= 1 || m.GIDs.Size() <= 1 }
