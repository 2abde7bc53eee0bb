package rootfs

import (
	"bytes"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Xattrs returns the xattrs of path (not followed) that pass keep.
func Xattrs(path string, keep func(string) bool) (map[string]string, error) {
	names, err := XattrNames(path)
	if err != nil {
		return nil, err
	}
	var out map[string]string
	for _, name := range names {
		if !keep(name) {
			continue
		}
		v, err := Xattr(path, name)
		if err != nil {
			return nil, err
		}
		if v == nil {
			continue // removed meanwhile
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = string(v)
	}
	return out, nil
}

// XattrNames returns the names of the xattrs of path (not followed), nil
// when it has none or its file system has no xattrs.
func XattrNames(path string) ([]string, error) {
	// Most files have no xattrs, or names that fit in small, which then
	// stays on the stack (so the names are cut out by hand: a
	// bytes.SplitSeq loop would move it to the heap).
	var small [1024]byte
	buf := small[:]
	for {
		n, err := unix.Llistxattr(path, buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			buf = make([]byte, len(buf)*4)
			continue
		case errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("listing xattrs of %s: %w", path, err)
		}
		var names []string
		for rest := buf[:n]; len(rest) > 0; {
			var name []byte
			name, rest, _ = bytes.Cut(rest, []byte{0})
			if len(name) > 0 {
				names = append(names, string(name))
			}
		}
		return names, nil
	}
}

// Xattr returns the value of xattr name on path (not followed), or nil if
// path has no such xattr.
func Xattr(path, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			buf = make([]byte, len(buf)*4)
			continue
		case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("reading xattr %s of %s: %w", name, path, err)
		}
		return buf[:n], nil
	}
}
