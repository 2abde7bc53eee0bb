// Package rootfs resolves paths inside a root filesystem, reads the
// extended attributes that belong in a layer and opens files without the
// runtime poller's cost. It is the one resolver that copies, mount-stub
// handling and layer extraction share.
//
// Input: a root directory on the host and a path as seen inside it.
// Output: the host path it names, with symlinks followed inside the root,
// and which of its components do not exist yet.
package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Mode says what a path that leaves the root becomes.
type Mode int

const (
	// Clamp resolves as if root were "/": an absolute symlink target
	// restarts at root, ".." stops at root. A rootfs is resolved so.
	Clamp Mode = iota
	// Confine makes a symlink or ".." that leaves root an error: the
	// build context is resolved so, as nothing outside it may be read.
	Confine
)

// ErrEscapes is wrapped by errors of Confine resolutions that leave the root.
var ErrEscapes = errors.New("it leaves the root (through \"..\" or a symlink)")

// maxLinks bounds symlink hops, as the kernel's ELOOP does.
const maxLinks = 40

// Resolve returns the host path of p inside root, following symlinks,
// the last component's included. Missing components are kept as they are
// (the result then does not exist).
func Resolve(root, p string, m Mode) (string, error) {
	host, _, err := walk(root, p, m, true)
	return host, err
}

// ResolveParent resolves p's parent inside root and returns the host path
// of p's last component, not followed: where an entry named p is made.
func ResolveParent(root, p string, m Mode) (string, error) {
	host, _, err := walk(root, p, m, false)
	return host, err
}

// Missing resolves p as Resolve does and also returns the host paths of its
// components that do not exist, parents first, so that a caller can make
// them. A component that exists but is not a directory ends the walk with
// no error: the caller's own operation reports it.
func Missing(root, p string, m Mode) (host string, missing []string, err error) {
	return walk(root, p, m, true)
}

func walk(root, p string, m Mode, followLast bool) (string, []string, error) {
	queue := split(p)
	var cur []string // resolved components below root
	var missing []string
	hops := 0
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if c == ".." {
			if len(cur) == 0 {
				if m == Confine {
					return "", nil, fmt.Errorf("%s: %w", p, ErrEscapes)
				}
				continue
			}
			cur = cur[:len(cur)-1]
			continue
		}
		host := filepath.Join(root, filepath.Join(cur...), c)
		if len(missing) > 0 {
			missing = append(missing, host)
			cur = append(cur, c)
			continue
		}
		fi, err := os.Lstat(host)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, host)
			cur = append(cur, c)
			continue
		case err != nil && isNotDir(err):
			cur = append(cur, c)
			continue
		case err != nil:
			return "", nil, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 || (len(queue) == 0 && !followLast) {
			cur = append(cur, c)
			continue
		}
		if hops++; hops > maxLinks {
			return "", nil, fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", nil, err
		}
		if path.IsAbs(target) {
			if m == Confine {
				return "", nil, fmt.Errorf("%s: %w", p, ErrEscapes)
			}
			cur = nil
		}
		queue = append(split(target), queue...)
	}
	return filepath.Join(root, filepath.Join(cur...)), missing, nil
}

// split splits p into its non-empty, non-"." components.
func split(p string) []string {
	var out []string
	for c := range strings.SplitSeq(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// LayerXattr reports whether an xattr belongs in a layer (and in a copy).
// Overlay-private xattrs (trusted.overlay.*, and user.overlay.* of a
// rootless overlay) do not. Nor does security.selinux: it is the host's
// label for the file (set by the host's policy on creation), not part of
// the image; Docker, BuildKit and containerd never put it in layers either.
func LayerXattr(name string) bool {
	return !strings.HasPrefix(name, "trusted.overlay.") && !strings.HasPrefix(name, "user.overlay.") &&
		name != "security.selinux"
}
