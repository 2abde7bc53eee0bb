package layers

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	overlayXattrPrefix = "trusted.overlay."
	opaqueXattr        = "trusted.overlay.opaque"
)

// layerXattr reports whether an xattr belongs in a layer. Overlay-private
// trusted.overlay.* xattrs do not. Nor does security.selinux: it is the
// host's label for the file (set by the host's policy on creation, with the
// build container's MCS categories), not part of the image; Docker, BuildKit
// and containerd never put it in layers either.
func layerXattr(name string) bool {
	return !strings.HasPrefix(name, overlayXattrPrefix) && name != "security.selinux"
}

// listXattrs returns the xattrs of path (not followed) that pass keep.
func listXattrs(path string, keep func(string) bool) (map[string]string, error) {
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
		v, err := getXattr(path, string(name))
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

// getXattr returns the value of xattr name on path (not followed), or nil
// if path has no such xattr.
func getXattr(path, name string) ([]byte, error) {
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

func isOpaque(path string) (bool, error) {
	v, err := getXattr(path, opaqueXattr)
	return string(v) == "y", err
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
