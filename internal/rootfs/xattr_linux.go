package rootfs

import (
	"bytes"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Xattrs returns the xattrs of path (not followed) that pass keep.
func Xattrs(path string, keep func(string) bool) (map[string]string, error) {
	buf := make([]byte, 1024)
	var n int
	for {
		var err error
		n, err = unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing xattrs of %s: %w", path, err)
		}
		break
	}
	var out map[string]string
	for _, name := range bytes.Split(buf[:n], []byte{0}) {
		if len(name) == 0 || !keep(string(name)) {
			continue
		}
		v, err := Xattr(path, string(name))
		if err != nil {
			return nil, err
		}
		if v == nil {
			continue // removed meanwhile
		}
		if out == nil {
			out = map[string]string{}
		}
		out[string(name)] = string(v)
	}
	return out, nil
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
