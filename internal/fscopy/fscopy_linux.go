package fscopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Copy copies sources, paths inside srcRoot (absolute, or relative to its
// "/"; shell globs allowed), to dest inside dstRoot, as docker's COPY
// --from does: a directory source copies its contents into dest, a file
// source into a dest ending in "/" lands inside it, else becomes dest;
// several sources need a dest ending in "/". Every path is resolved inside
// its root, symlinks included, as if the root were "/": nothing outside
// either root is read or written.
func Copy(ctx context.Context, srcRoot string, sources []string, dstRoot, dest string, o Options) (Stats, error) {
	c := &copier{ctx: ctx, o: o, dstRoot: dstRoot, links: map[fileID]string{}, dirs: map[string]string{}}
	var matches []string
	globbed := false
	for _, s := range sources {
		rel := clean(s)
		if !strings.ContainsAny(rel, `*?[\`) {
			matches = append(matches, rel)
			continue
		}
		globbed = true
		found, err := glob(srcRoot, rel)
		if err != nil {
			return c.stats, fmt.Errorf("source %q: %w", s, err)
		}
		if len(found) == 0 {
			return c.stats, fmt.Errorf("source %q matches nothing", s)
		}
		matches = append(matches, found...)
	}
	into := strings.HasSuffix(dest, "/")
	if (len(matches) > 1 || globbed) && !into {
		return c.stats, fmt.Errorf("copying several sources needs a destination dir ending in /, not %q", dest)
	}
	destRel := clean(dest)
	for _, m := range matches {
		src, err := Resolve(srcRoot, m)
		if err != nil {
			return c.stats, fmt.Errorf("source %q: %w", "/"+m, err)
		}
		fi, err := os.Lstat(src)
		if err != nil {
			return c.stats, fmt.Errorf("source %q: %w", "/"+m, err)
		}
		target := destRel
		if !fi.IsDir() {
			if into || c.isDir(destRel) {
				target = path.Join(destRel, path.Base(m))
			}
		}
		if err := c.tree(src, target); err != nil {
			return c.stats, err
		}
	}
	return c.stats, c.finish()
}

type fileID struct{ dev, ino uint64 }

type copier struct {
	ctx     context.Context
	o       Options
	dstRoot string
	stats   Stats
	links   map[fileID]string // source inode → first destination path
	dirs    map[string]string // resolved destination dirs: rel → host path
	pending []pendingDir      // dirs whose metadata is set after their contents
}

type pendingDir struct {
	host string
	fi   os.FileInfo
	src  string
}

// clean makes p a root-relative, slash-separated path ("" is the root).
func clean(p string) string {
	c := path.Clean("/" + p)
	return strings.TrimPrefix(c, "/")
}

// glob matches a root-relative pattern inside root, component by
// component, resolving the non-pattern parts inside the root.
func glob(root, pattern string) ([]string, error) {
	dir, file := path.Split(pattern)
	dir = strings.TrimSuffix(dir, "/")
	var dirs []string
	if strings.ContainsAny(dir, `*?[\`) {
		var err error
		if dirs, err = glob(root, dir); err != nil {
			return nil, err
		}
	} else {
		dirs = []string{dir}
	}
	var out []string
	for _, d := range dirs {
		host, err := Resolve(root, d)
		if err != nil {
			continue
		}
		entries, err := os.ReadDir(host)
		if err != nil {
			continue
		}
		for _, e := range entries {
			ok, err := path.Match(file, e.Name())
			if err != nil {
				return nil, err
			}
			if ok {
				out = append(out, path.Join(d, e.Name()))
			}
		}
	}
	return out, nil
}

// Resolve returns the host path of rel inside root, following symlinks
// as if root were "/": an absolute target restarts at root, ".." stops at
// root. The last component is followed too. Missing components are kept
// as they are (the result then does not exist).
func Resolve(root, rel string) (string, error) {
	return resolve(root, rel, true)
}

func resolve(root, rel string, followLast bool) (string, error) {
	parts := strings.Split(clean(rel), "/")
	var cur []string // resolved components below root
	hops := 0
	for len(parts) > 0 {
		p := parts[0]
		parts = parts[1:]
		switch p {
		case "", ".":
			continue
		case "..":
			if len(cur) > 0 {
				cur = cur[:len(cur)-1]
			}
			continue
		}
		host := filepath.Join(root, filepath.Join(cur...), p)
		fi, err := os.Lstat(host)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 || (len(parts) == 0 && !followLast) {
			cur = append(cur, p)
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("too many levels of symbolic links at /%s", path.Join(append(cur, p)...))
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			cur = nil
		}
		parts = append(strings.Split(target, "/"), parts...)
	}
	return filepath.Join(root, filepath.Join(cur...)), nil
}

// isDir says whether rel is a directory in the destination (following
// symlinks inside the root).
func (c *copier) isDir(rel string) bool {
	host, err := Resolve(c.dstRoot, rel)
	if err != nil {
		return false
	}
	fi, err := os.Stat(host)
	return err == nil && fi.IsDir()
}

// parent returns the host path of the destination dir rel, creating what
// is missing (0755, owned by the override owner or root).
func (c *copier) parent(rel string) (string, error) {
	if host, ok := c.dirs[rel]; ok {
		return host, nil
	}
	if rel == "" {
		c.dirs[rel] = c.dstRoot
		return c.dstRoot, nil
	}
	// Resolving follows symlinks inside the root; what is missing of
	// the resolved path is then made, component by component (those
	// components are plain names: nothing there to follow).
	host, err := resolve(c.dstRoot, rel, true)
	if err != nil {
		return "", err
	}
	under, err := filepath.Rel(c.dstRoot, host)
	if err != nil || under == ".." || strings.HasPrefix(under, "../") {
		return "", fmt.Errorf("destination /%s resolves outside the root", rel)
	}
	cur := c.dstRoot
	for _, name := range strings.Split(under, "/") {
		if name == "." {
			continue
		}
		cur = filepath.Join(cur, name)
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return "", err
			}
			uid, gid := 0, 0
			if c.o.OwnerSet {
				uid, gid = c.o.UID, c.o.GID
			}
			if err := os.Lchown(cur, uid, gid); err != nil {
				return "", err
			}
		case err != nil:
			return "", err
		case !fi.IsDir():
			return "", fmt.Errorf("destination /%s: %s exists and is not a directory", rel, strings.TrimPrefix(cur, c.dstRoot))
		}
	}
	c.dirs[rel] = host
	return host, nil
}

// tree copies the host path src (not followed if a symlink) to the
// destination rel; a directory's contents go into rel.
func (c *copier) tree(src, rel string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := c.ctx.Err(); err != nil {
			return err
		}
		sub, _ := filepath.Rel(src, p)
		target := path.Join(rel, filepath.ToSlash(sub))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return c.entry(p, fi, target)
	})
}

func (c *copier) entry(src string, fi os.FileInfo, rel string) error {
	if rel == "" || rel == "." {
		// Copying into the root itself: its own metadata is the image's.
		c.dirs[""] = c.dstRoot
		return nil
	}
	if fi.IsDir() {
		host, err := c.parent(rel)
		if err != nil {
			return err
		}
		c.pending = append(c.pending, pendingDir{host: host, fi: fi, src: src})
		c.stats.Dirs++
		return nil
	}
	dir, err := c.parent(path.Dir("/" + rel)[1:])
	if err != nil {
		return err
	}
	host := filepath.Join(dir, path.Base(rel))
	if old, err := os.Lstat(host); err == nil {
		if old.IsDir() {
			return fmt.Errorf("destination /%s is a directory; cannot replace it with a file", rel)
		}
		if err := os.Remove(host); err != nil {
			return err
		}
	}
	st := fi.Sys().(*syscall.Stat_t)
	id := fileID{uint64(st.Dev), st.Ino}
	if st.Nlink > 1 && !fi.IsDir() {
		if first, ok := c.links[id]; ok {
			c.stats.Links++
			return os.Link(first, host)
		}
		c.links[id] = host
	}
	switch m := fi.Mode(); {
	case m.IsRegular():
		if err := c.file(src, host); err != nil {
			return err
		}
	case m&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, host); err != nil {
			return err
		}
	default:
		if err := unix.Mknod(host, st.Mode, int(st.Rdev)); err != nil {
			return fmt.Errorf("making /%s: %w", rel, err)
		}
	}
	c.stats.Files++
	return c.meta(src, host, fi)
}

func (c *copier) file(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(out, in)
	c.stats.Bytes += n
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// meta sets owner, mode, xattrs and mtime, in the order that keeps them:
// chown clears setuid bits and file capabilities, so it comes first.
func (c *copier) meta(src, host string, fi os.FileInfo) error {
	st := fi.Sys().(*syscall.Stat_t)
	uid, gid := int(st.Uid), int(st.Gid)
	if c.o.OwnerSet {
		uid, gid = c.o.UID, c.o.GID
	}
	if err := os.Lchown(host, uid, gid); err != nil {
		return err
	}
	symlink := fi.Mode()&fs.ModeSymlink != 0
	if !symlink {
		mode := st.Mode & 0o7777
		if c.o.Mode != nil {
			mode = uint32(c.o.Mode.Perm())
			if *c.o.Mode&fs.ModeSetuid != 0 {
				mode |= unix.S_ISUID
			}
			if *c.o.Mode&fs.ModeSetgid != 0 {
				mode |= unix.S_ISGID
			}
			if *c.o.Mode&fs.ModeSticky != 0 {
				mode |= unix.S_ISVTX
			}
		}
		if err := unix.Fchmodat(unix.AT_FDCWD, host, mode, 0); err != nil {
			return err
		}
	}
	if err := copyXattrs(src, host, symlink); err != nil {
		return err
	}
	mtime := time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec))
	if c.o.ModTime != nil {
		mtime = *c.o.ModTime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, host, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// copyXattrs copies every extended attribute but the host's SELinux label
// and overlayfs's private ones.
func copyXattrs(src, dst string, symlink bool) error {
	names, err := listXattrs(src)
	if err != nil {
		return err
	}
	for _, name := range names {
		if name == "security.selinux" || strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		val, err := getXattr(src, name)
		if err != nil {
			return err
		}
		if err := unix.Lsetxattr(dst, name, val, 0); err != nil {
			if symlink && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP)) {
				continue // user.* cannot be set on a symlink
			}
			return fmt.Errorf("setting xattr %s on %s: %w", name, dst, err)
		}
	}
	return nil
}

func listXattrs(p string) ([]string, error) {
	size, err := unix.Llistxattr(p, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, err
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, n := range strings.Split(string(buf[:size]), "\x00") {
		if n != "" {
			names = append(names, n)
		}
	}
	return names, nil
}

func getXattr(p, name string) ([]byte, error) {
	size, err := unix.Lgetxattr(p, name, nil)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	size, err = unix.Lgetxattr(p, name, buf)
	if err != nil {
		return nil, err
	}
	return buf[:size], nil
}

// finish sets the copied dirs' metadata, deepest first, so that writing
// their contents does not change their mtimes afterwards.
func (c *copier) finish() error {
	for i := len(c.pending) - 1; i >= 0; i-- {
		d := c.pending[i]
		if err := c.meta(d.src, d.host, d.fi); err != nil {
			return err
		}
	}
	return nil
}
