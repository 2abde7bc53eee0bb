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

	"github.com/stratabuild/strata/internal/rootfs"
	"github.com/stratabuild/strata/internal/userns"
)

// Copy copies sources, paths inside srcRoot (absolute, or relative to its
// "/"; shell globs allowed), to dest inside dstRoot, as docker's COPY does:
// a directory source copies its contents into dest; a file source into a
// dest ending in "/" lands inside it, else becomes dest; several sources or
// a glob copy into dest, and several sources need a dest ending in "/".
func Copy(ctx context.Context, srcRoot string, sources []string, dstRoot, dest string, o Options) (Stats, error) {
	c := &copier{ctx: ctx, o: o, srcRoot: srcRoot, dstRoot: dstRoot, links: map[fileID]string{}, firstOf: map[string]fileID{}, dirs: map[string]string{}}
	matches, err := match(srcRoot, sources, o)
	if err != nil {
		return c.stats, err
	}
	into := strings.HasSuffix(dest, "/")
	if err := checkDest(sources, matches, dest); err != nil {
		return c.stats, err
	}
	destRel := clean(dest)
	for _, m := range matches {
		src, err := rootfs.Resolve(srcRoot, m, o.mode())
		if err != nil {
			return c.stats, sourceErr(m, o, err)
		}
		fi, err := os.Lstat(src)
		if err != nil {
			return c.stats, sourceErr(m, o, err)
		}
		if c.ignored(src) && (!fi.IsDir() || c.skips(src)) {
			// m was not left out, what it leads to is (see walkContext).
			to, _ := filepath.Rel(srcRoot, src)
			return c.stats, sourceErr(m, o, leadsToIgnored(filepath.ToSlash(to), o.Ignore))
		}
		target := destRel
		if !fi.IsDir() && (into || c.isDir(destRel)) {
			target = path.Join(destRel, path.Base(m))
		}
		if err := c.tree(src, target); err != nil {
			return c.stats, err
		}
	}
	return c.stats, c.finish()
}

// WriteFile writes content as the file dest inside dstRoot, as the copy of
// one file would land there: missing parents made, owner and mode from o
// (0:0 and 0644 unless it says), mtime o.ModTime or now. A directory at
// dest is an error; anything else there is replaced.
func WriteFile(ctx context.Context, dstRoot, dest string, content []byte, o Options) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &copier{ctx: ctx, o: o, dstRoot: dstRoot, dirs: map[string]string{}}
	rel := clean(dest)
	host, err := c.target(rel, "file destination /%s is a directory")
	if err != nil {
		return err
	}
	if err := os.WriteFile(host, content, 0o600); err != nil {
		return fmt.Errorf("writing /%s: %w", rel, err)
	}
	uid, gid := c.owner(nil)
	if err := c.chown(host, uid, gid); err != nil {
		return err
	}
	mode := uint32(0o644)
	if o.Mode != nil {
		mode = c.mode(nil, nil) // o.Mode alone decides
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, host, mode, 0); err != nil {
		return err
	}
	mtime := time.Now()
	if o.ModTime != nil {
		mtime = *o.ModTime
	}
	return os.Chtimes(host, mtime, mtime)
}

type fileID struct{ dev, ino uint64 }

type copier struct {
	ctx              context.Context
	o                Options
	srcRoot, dstRoot string
	stats            Stats
	links            map[fileID]string // source inode → first destination path
	firstOf          map[string]fileID // its inverse: a path written over is no link's first
	dirs             map[string]string // resolved destination dirs: rel → host path
	pending          []pendingDir      // dirs whose metadata is set after their contents
}

type pendingDir struct {
	host string
	fi   os.FileInfo
	src  string
}

// isDir says whether rel is a directory in the destination (following
// symlinks inside the root).
func (c *copier) isDir(rel string) bool {
	host, err := rootfs.Resolve(c.dstRoot, rel, rootfs.Clamp)
	if err != nil {
		return false
	}
	fi, err := os.Stat(host)
	return err == nil && fi.IsDir()
}

// owner is who owns what the copy writes: the step's owner, or the
// source's (st) when a FromRoot copy keeps owners.
func (c *copier) owner(st *syscall.Stat_t) (int, int) {
	switch {
	case c.o.OwnerSet || c.o.Policy == FromContext:
		return c.o.UID, c.o.GID
	case st == nil: // a parent the copy creates
		return 0, 0
	}
	return int(st.Uid), int(st.Gid)
}

// chown sets the owner of host, a path in the destination. In a user
// namespace (a rootless build) an owner outside its id maps is an
// *userns.UnmappedError naming the path as the image sees it.
func (c *copier) chown(host string, uid, gid int) error {
	err := os.Lchown(host, uid, gid)
	if errors.Is(err, unix.EINVAL) && userns.Inside() {
		if maps, merr := userns.CurrentMaps(); merr == nil {
			rel, _ := filepath.Rel(c.dstRoot, host)
			if uerr := userns.CheckOwner(maps, path.Clean("/"+filepath.ToSlash(rel)), uint32(uid), uint32(gid)); uerr != nil {
				return uerr
			}
		}
	}
	return err
}

// target returns the host path where the file rel is made: its parents
// made (see parent), and what is there removed, unless it is a directory
// — then isDir, formatted with rel, is the error.
func (c *copier) target(rel, isDir string) (string, error) {
	dir, err := c.parent(path.Dir("/" + rel)[1:])
	if err != nil {
		return "", err
	}
	host := filepath.Join(dir, path.Base(rel))
	if old, err := os.Lstat(host); err == nil {
		if old.IsDir() {
			return "", fmt.Errorf(isDir, rel)
		}
		if err := os.Remove(host); err != nil {
			return "", err
		}
	}
	return host, nil
}

// parent returns the host path of the destination dir rel, creating what
// is missing (0755, owned by the step's owner or root).
func (c *copier) parent(rel string) (string, error) {
	if host, ok := c.dirs[rel]; ok {
		return host, nil
	}
	host, missing, err := rootfs.Missing(c.dstRoot, rel, rootfs.Clamp)
	if err != nil {
		return "", err
	}
	uid, gid := c.owner(nil)
	for _, p := range missing {
		if err := os.Mkdir(p, 0o755); err != nil {
			return "", fmt.Errorf("creating /%s: %w", rel, err)
		}
		if err := unix.Fchmodat(unix.AT_FDCWD, p, 0o755, 0); err != nil { // not strata's umask
			return "", fmt.Errorf("creating /%s: %w", rel, err)
		}
		if err := c.chown(p, uid, gid); err != nil {
			return "", err
		}
	}
	if fi, err := os.Stat(host); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("copy destination /%s exists and is not a directory", rel)
	}
	c.dirs[rel] = host
	return host, nil
}

// tree copies the host path src (not followed if a symlink) to the
// destination rel; a directory's contents go into rel, as with docker. A
// directory rel that is there already keeps its own owner and mode (a
// copy into /tmp/ leaves it 1777); one that is not is made as the missing
// parents are (0755, the step's owner), not with its source's owner and
// mode (a 0700 dir from mktemp -d); the directories below it take their
// sources'.
func (c *copier) tree(src, rel string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := c.ctx.Err(); err != nil {
			return err
		}
		if c.ignored(p) {
			if d.IsDir() && c.skips(p) {
				return fs.SkipDir
			}
			return nil
		}
		if p == src && d.IsDir() && rel != "" && rel != "." {
			return c.destDir(rel)
		}
		sub, _ := filepath.Rel(src, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return c.entry(p, fi, path.Join(rel, filepath.ToSlash(sub)))
	})
}

// destDir makes the destination dir rel of a directory's contents, unless
// it is there (a directory): as a missing parent is made (0755, as docker
// makes it: the copy's mode is for what it copies), then with the copy's
// mtime where it gives one.
func (c *copier) destDir(rel string) error {
	_, missing, err := rootfs.Missing(c.dstRoot, rel, rootfs.Clamp)
	existed := err == nil && len(missing) == 0
	host, err := c.parent(rel)
	if err != nil || existed {
		return err
	}
	if c.o.ModTime != nil {
		c.pending = append(c.pending, pendingDir{host: host}) // no fi: the copy's own mtime
	}
	return nil
}

// skips reports whether the ignored directory p of the build context can
// be left out whole (see Ignore.Skips).
func (c *copier) skips(p string) bool {
	rel, err := filepath.Rel(c.srcRoot, p)
	return err != nil || c.o.Ignore.Skips(filepath.ToSlash(rel))
}

// ignored reports whether the ignore file excludes the host path p of the
// build context.
func (c *copier) ignored(p string) bool {
	if c.o.Policy != FromContext || c.o.Ignore == nil {
		return false
	}
	rel, err := filepath.Rel(c.srcRoot, p)
	return err == nil && c.o.Ignore.Match(filepath.ToSlash(rel))
}

func (c *copier) entry(src string, fi os.FileInfo, rel string) error {
	if c.o.Policy == FromContext && Special(fi.Mode()) {
		return nil // left out, as ContextInputs says
	}
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
	host, err := c.target(rel, "copy destination /%s is a directory; end it with / to copy into it")
	if err != nil {
		return err
	}
	if id, ok := c.firstOf[host]; ok {
		// What was written here, and linked to, is gone: a later name of
		// its source is a file of its own again (as with docker).
		delete(c.links, id)
		delete(c.firstOf, host)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Nlink > 1 {
		id := fileID{uint64(st.Dev), st.Ino}
		if first, ok := c.links[id]; ok {
			c.stats.Links++
			return os.Link(first, host)
		}
		c.links[id], c.firstOf[host] = host, id
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
	case c.o.Policy == FromContext:
		return fmt.Errorf("copy source %q: unsupported file type %s", src, m.Type())
	default:
		if err := unix.Mknod(host, st.Mode, int(st.Rdev)); err != nil {
			return fmt.Errorf("making /%s: %w", rel, err)
		}
	}
	c.stats.Files++
	return c.meta(src, host, fi)
}

func (c *copier) file(src, dst string) error {
	in, err := rootfs.OpenFile(src, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := rootfs.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(out, in) // copy_file_range where the kernel can, a reflink on btrfs or xfs
	c.stats.Bytes += n
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// mode is the permission bits (with setuid, setgid, sticky) to give what
// fi describes.
func (c *copier) mode(fi os.FileInfo, st *syscall.Stat_t) uint32 {
	if m := c.o.Mode; m != nil {
		mode := uint32(m.Perm())
		if *m&fs.ModeSetuid != 0 {
			mode |= unix.S_ISUID
		}
		if *m&fs.ModeSetgid != 0 {
			mode |= unix.S_ISGID
		}
		if *m&fs.ModeSticky != 0 {
			mode |= unix.S_ISVTX
		}
		return mode
	}
	if c.o.Policy == FromContext {
		if fi.IsDir() || fi.Mode()&0o100 != 0 {
			return 0o755
		}
		return 0o644
	}
	return st.Mode & 0o7777
}

// meta sets owner, mode, xattrs and mtime, in the order that keeps them:
// chown clears setuid bits and file capabilities, so it comes first.
func (c *copier) meta(src, host string, fi os.FileInfo) error {
	st := fi.Sys().(*syscall.Stat_t)
	uid, gid := c.owner(st)
	if err := c.chown(host, uid, gid); err != nil {
		return err
	}
	symlink := fi.Mode()&fs.ModeSymlink != 0
	if !symlink {
		if err := unix.Fchmodat(unix.AT_FDCWD, host, c.mode(fi, st), 0); err != nil {
			return err
		}
	}
	if c.o.Policy == FromRoot {
		if err := copyXattrs(src, host, symlink); err != nil {
			return err
		}
	}
	mtime := time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec))
	if c.o.ModTime != nil {
		mtime = *c.o.ModTime
	}
	ts := []unix.Timespec{unix.NsecToTimespec(mtime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, host, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// copyXattrs copies the xattrs that belong in a layer.
func copyXattrs(src, dst string, symlink bool) error {
	xs, err := rootfs.Xattrs(src, rootfs.LayerXattr)
	if err != nil {
		return err
	}
	for name, val := range xs {
		if err := unix.Lsetxattr(dst, name, []byte(val), 0); err != nil {
			if symlink && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.ENOTSUP)) {
				continue // user.* cannot be set on a symlink
			}
			return fmt.Errorf("setting xattr %s on %s: %w", name, dst, err)
		}
	}
	return nil
}

// finish sets the copied dirs' metadata, deepest first, so that writing
// their contents does not change their mtimes afterwards.
func (c *copier) finish() error {
	for i := len(c.pending) - 1; i >= 0; i-- {
		d := c.pending[i]
		var err error
		if d.fi == nil {
			err = c.given(d.host)
		} else {
			err = c.meta(d.src, d.host, d.fi)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// given sets the mtime the copy gives on the dir host that it made.
func (c *copier) given(host string) error {
	return os.Chtimes(host, *c.o.ModTime, *c.o.ModTime)
}
