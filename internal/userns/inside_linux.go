package userns

import (
	"fmt"
	"os"
	"sync"
)

// Inside reports whether this process runs in a user namespace other than
// the initial one: then overlay needs userxattr, trusted.* xattrs and
// device nodes cannot be made, cgroups are not ours to set, and only the
// mapped ids exist. It is true in the namespace Run makes, and in any
// other (a rootless container, `unshare -r`).
func Inside() bool { return inside() }

var inside = sync.OnceValue(func() bool {
	m, err := readMap("/proc/self/uid_map")
	// Without /proc, assume the initial namespace: the rootful behaviour,
	// whose operations then fail loudly rather than silently differ.
	return err == nil && !m.isIdentity()
})

// CurrentMaps returns the uid and gid maps of this process's user
// namespace.
func CurrentMaps() (Maps, error) {
	return currentMaps()
}

var currentMaps = sync.OnceValues(func() (Maps, error) {
	uids, err := readMap("/proc/self/uid_map")
	if err != nil {
		return Maps{}, err
	}
	gids, err := readMap("/proc/self/gid_map")
	if err != nil {
		return Maps{}, err
	}
	return Maps{UIDs: uids, GIDs: gids}, nil
})

func readMap(file string) (IDMap, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("reading id map: %w", err)
	}
	defer f.Close()
	m, err := parseMap(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	return m, nil
}
