package layers

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"github.com/containerd/continuity/fs"
	mobyuserns "github.com/moby/sys/userns"
	"golang.org/x/sys/unix"
)

// An extractor applies a layer tar to a new, empty dir, the snapshot
// Store.Unpack makes, and leaves the tree containerd's archive.Apply
// leaves with the unpacker's filter and whiteouts: the same entries
// refused or skipped, the same names resolved, the same metadata set in
// the same order. It takes 0.6–0.7 of the time (docs/benchmarks.md,
// "Fifth round"): archive.Apply resolves each entry's parent from the
// root, an lstat per component, and lstats the entry before making it
// and again to chmod it; the extractor knows what the dir holds, as it
// made all of it, so it makes each entry with the syscalls that set its
// content and metadata and no others (a regular file's through its open
// fd). Only a name whose parent goes through a symlink of the layer is
// resolved on disk, by the resolver archive.Apply uses.
type extractor struct {
	root string // the dir, absolute and clean
	ctx  context.Context
	u    *unpacker
	log  *slog.Logger
	// kinds holds every path under root, relative to it. A path is
	// kindDir only when each of its ancestors is too, so a name made
	// from it has no symlink in it.
	kinds map[string]kind
	// children holds the paths made in each dir, for forget: a set, so
	// that a name made again and again is held once.
	children map[string]map[string]struct{}
	dirs     []dirTimes
	buf      []byte
}

type kind uint8

const (
	kindDir kind = iota + 1
	kindSymlink
	kindOther
)

// dirTimes is a dir entry's times, set again once the layer is
// extracted, as making entries in the dir changes its mtime.
type dirTimes struct {
	name  string // as the tar names it, cleaned
	rel   string // the path it names when no symlink is in the way
	times [2]unix.Timespec
}

func newExtractor(root string, u *unpacker, log *slog.Logger) *extractor {
	return &extractor{
		root:     filepath.Clean(root),
		u:        u,
		log:      discardIfNil(log),
		kinds:    map[string]kind{},
		children: map[string]map[string]struct{}{},
		buf:      make([]byte, 256<<10),
	}
}

// apply extracts the tar r to the root, which must be empty.
func (e *extractor) apply(ctx context.Context, r io.Reader) error {
	e.ctx = ctx
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		hdr.Name = filepath.Clean(hdr.Name)
		ok, err := e.u.filter(hdr)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		// archive.Apply's test, which differs from internal/userns.Inside
		// in a namespace mapping every id (no device node can be made
		// there either).
		if (hdr.Typeflag == tar.TypeBlock || hdr.Typeflag == tar.TypeChar) && mobyuserns.RunningInUserNS() {
			// Under /dev a step sees the runtime's own; elsewhere a step
			// that copies the dir up would commit it without the node,
			// other bytes than a build as root makes.
			if rel := strings.TrimPrefix(strings.TrimPrefix(hdr.Name, "./"), "/"); rel != "dev" && !strings.HasPrefix(rel, "dev/") {
				return fmt.Errorf("entry %q: a device node, which a user namespace cannot make, outside /dev (build this image as root)", hdr.Name)
			}
			e.log.Warn("device node left out: a user namespace cannot make one", "entry", hdr.Name)
			continue
		}
		if err := e.entry(hdr, tr); err != nil {
			return err
		}
	}
	return e.setDirTimes()
}

// entry makes the entry hdr names, with its content from r.
func (e *extractor) entry(hdr *tar.Header, r io.Reader) error {
	rel := path.Clean("/" + hdr.Name)[1:]
	if rel == "" {
		e.log.Debug("entry ignored: it names the root", "entry", hdr.Name)
		return nil
	}
	parent, err := e.parentDir(path.Dir(rel))
	if err != nil {
		return fmt.Errorf("entry %q: %w", hdr.Name, err)
	}
	base := path.Base(rel)
	rel = join(parent, base)
	p := e.abs(rel)

	// whited is the name a whiteout .wh.NAME deletes, made a 0/0 char
	// device by convertWhiteout.
	whited, whiteout := strings.CutPrefix(base, whiteoutPrefix)
	whiteout = whiteout && base != opaqueMarker
	if whiteout && (whited == "" || whited == "." || whited == "..") {
		return fmt.Errorf("invalid whiteout name: %v: invalid archive", base)
	}
	write, err := e.u.convertWhiteout(hdr, p)
	if err != nil {
		return fmt.Errorf("whiteout %q: %w", hdr.Name, err)
	}
	if !write {
		if whiteout {
			e.made(parent, join(parent, whited), kindOther)
		}
		return nil
	}

	if k, ok := e.kinds[rel]; ok && (k != kindDir || hdr.Typeflag != tar.TypeDir) {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		e.forget(rel)
	}
	if err := e.create(hdr, r, parent, rel, p); err != nil {
		return fmt.Errorf("entry %q: %w", hdr.Name, err)
	}
	return nil
}

// create makes the entry at rel (p under the root) in the dir parent and
// sets its metadata.
func (e *extractor) create(hdr *tar.Header, r io.Reader, parent, rel, p string) error {
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // an old tar may still say TypeRegA
		return e.file(hdr, r, parent, rel, p)
	case tar.TypeDir:
		if _, ok := e.kinds[rel]; !ok {
			if err := unix.Mkdir(p, 0o700); err != nil {
				return &os.PathError{Op: "mkdir", Path: p, Err: err}
			}
			e.made(parent, rel, kindDir)
		}
		// Its times are set now, as archive.Apply does, and again once
		// the layer is extracted: by then its name may lead elsewhere.
		e.dirs = append(e.dirs, dirTimes{name: hdr.Name, rel: path.Clean("/" + hdr.Name)[1:], times: tarTimes(hdr)})
		return e.meta(hdr, p, kindDir)
	case tar.TypeSymlink:
		if err := unix.Symlink(hdr.Linkname, p); err != nil {
			return &os.LinkError{Op: "symlink", Old: hdr.Linkname, New: p, Err: err}
		}
		e.made(parent, rel, kindSymlink)
		return e.meta(hdr, p, kindSymlink)
	case tar.TypeLink:
		target, k, err := e.linkTarget(hdr.Linkname)
		if err != nil {
			return err
		}
		if err := unix.Link(target, p); err != nil {
			return &os.LinkError{Op: "link", Old: target, New: p, Err: err}
		}
		if k == 0 {
			k = kindOf(p)
		}
		e.made(parent, rel, k)
		return e.meta(hdr, p, k)
	case tar.TypeBlock, tar.TypeChar, tar.TypeFifo:
		if hdr.Devmajor < 0 || hdr.Devmajor > 1<<32-1 || hdr.Devminor < 0 || hdr.Devminor > 1<<32-1 {
			return fmt.Errorf("device number %d:%d out of range: invalid archive", hdr.Devmajor, hdr.Devminor)
		}
		typ := map[byte]uint32{tar.TypeBlock: unix.S_IFBLK, tar.TypeChar: unix.S_IFCHR, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		if err := unix.Mknod(p, mode|typ, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
			return &os.PathError{Op: "mknod", Path: p, Err: err}
		}
		e.made(parent, rel, kindOther)
		return e.meta(hdr, p, kindOther)
	case tar.TypeXGlobalHeader:
		e.log.Debug("PAX global extended header ignored", "entry", hdr.Name)
		return nil
	default:
		return fmt.Errorf("unhandled tar header type %d", hdr.Typeflag)
	}
}

// file writes a regular file and sets its metadata through its fd.
func (e *extractor) file(hdr *tar.Header, r io.Reader, parent, rel, p string) error {
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	e.made(parent, rel, kindOther)
	// ctxWriter stops a big file's write once ctx is done, and hides the
	// file's ReadFrom, which would not use the extractor's buffer.
	if _, err := io.CopyBuffer(ctxWriter{e.ctx, f}, r, e.buf); err != nil {
		return err
	}
	if err := e.chown(hdr, func() error { return unix.Fchown(fd, hdr.Uid, hdr.Gid) }, p); err != nil {
		return err
	}
	if err := e.xattrs(hdr, p, func(k, v string) error { return unix.Fsetxattr(fd, k, []byte(v), 0) }, kindOther); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return &os.PathError{Op: "chmod", Path: p, Err: err}
	}
	ts := tarTimes(hdr)
	if err := futimens(fd, &ts); err != nil {
		return &os.PathError{Op: "utimens", Path: p, Err: err}
	}
	return f.Close()
}

// meta sets the owner, xattrs, mode and times of the entry at p, of kind
// k: the mode unless it is a symlink.
func (e *extractor) meta(hdr *tar.Header, p string, k kind) error {
	if err := e.chown(hdr, func() error { return unix.Lchown(p, hdr.Uid, hdr.Gid) }, p); err != nil {
		return err
	}
	if err := e.xattrs(hdr, p, func(k, v string) error { return unix.Lsetxattr(p, k, []byte(v), 0) }, k); err != nil {
		return err
	}
	if k != kindSymlink {
		if err := unix.Chmod(p, uint32(hdr.Mode&0o7777)); err != nil {
			return &os.PathError{Op: "chmod", Path: p, Err: err}
		}
	}
	ts := tarTimes(hdr)
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimens", Path: p, Err: err}
	}
	return nil
}

func (e *extractor) chown(hdr *tar.Header, chown func() error, p string) error {
	err := chown()
	if err == nil {
		return nil
	}
	err = fmt.Errorf("chown %s to %d:%d: %w", p, hdr.Uid, hdr.Gid, err)
	if errors.Is(err, unix.EINVAL) && mobyuserns.RunningInUserNS() {
		err = fmt.Errorf("%w (give the user more subordinate ids in /etc/subuid and /etc/subgid)", err)
	}
	return err
}

// xattrs sets the entry's xattrs with set. As archive.Apply does, it
// skips with a warning one the filesystem does not support, and a user.*
// one on what is neither a file nor a dir (the kernel refuses those).
func (e *extractor) xattrs(hdr *tar.Header, p string, set func(k, v string) error, k kind) error {
	for key, value := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(key, "SCHILY.xattr.")
		if !ok {
			continue
		}
		err := set(name, value)
		switch {
		case err == nil:
		case errors.Is(err, unix.EPERM) && strings.HasPrefix(name, "user.") && !e.fileOrDir(p, k),
			errors.Is(err, unix.ENOTSUP):
			e.log.Warn("ignored xattr in archive", "xattr", name, "entry", hdr.Name, "error", err)
		default:
			return fmt.Errorf("setting xattr %s on %s: %w", name, p, err)
		}
	}
	return nil
}

// kindOf lstats p for its kind.
func kindOf(p string) kind {
	var st unix.Stat_t
	if unix.Lstat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return kindSymlink
	}
	return kindOther
}

// fileOrDir reports whether p, of kind k, is a regular file or a dir.
func (e *extractor) fileOrDir(p string, k kind) bool {
	if k == kindDir {
		return true
	}
	var st unix.Stat_t
	if unix.Lstat(p, &st) != nil {
		return true // as archive.Apply, which then fails with the xattr's error
	}
	return st.Mode&unix.S_IFMT == unix.S_IFREG
}

// parentDir returns the dir (relative to the root) that an entry whose
// name's parent is parent goes into: parent itself, or where it leads
// through the layer's symlinks, resolved by archive.Apply's resolver.
// Dirs missing on the way are made with mode 0755, as archive.Apply does.
func (e *extractor) parentDir(parent string) (string, error) {
	if parent == "." {
		return "", nil
	}
	if e.kinds[parent] == kindDir {
		return parent, nil
	}
	if e.throughSymlink(parent) {
		r, err := fs.RootPath(e.root, parent)
		if err != nil {
			return "", fmt.Errorf("resolving %s in the layer: %w", parent, err)
		}
		if r == e.root {
			return "", nil
		}
		parent = strings.TrimPrefix(r, e.root+"/")
	}
	// Make what is missing, top down.
	for i := 0; i <= len(parent); i++ {
		if i < len(parent) && parent[i] != '/' {
			continue
		}
		dir := parent[:i]
		switch k, ok := e.kinds[dir]; {
		case ok && k == kindDir:
			continue
		case ok:
			return "", &os.PathError{Op: "mkparent", Path: e.abs(dir), Err: unix.ENOTDIR}
		}
		p := e.abs(dir)
		if err := unix.Mkdir(p, 0o755); err != nil {
			return "", &os.PathError{Op: "mkdir", Path: p, Err: err}
		}
		if err := unix.Chmod(p, 0o755); err != nil {
			return "", &os.PathError{Op: "chmod", Path: p, Err: err}
		}
		e.made(path.Dir(dir), dir, kindDir)
	}
	return parent, nil
}

// throughSymlink reports whether the first of dir's leading components
// that is not a dir is a symlink.
func (e *extractor) throughSymlink(dir string) bool {
	for i := 0; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		switch e.kinds[dir[:i]] {
		case kindDir:
		case kindSymlink:
			return true
		default:
			return false
		}
	}
	return false
}

// linkTarget returns the path a hardlink to linkname links to, and its
// kind: linkname under the root, its parent resolved as archive.Apply
// resolves it (the root itself when that leads out).
func (e *extractor) linkTarget(linkname string) (string, kind, error) {
	c := path.Clean("/" + linkname)
	if c != "/" && c == "/"+strings.TrimPrefix(linkname, "/") {
		if parent := path.Dir(c[1:]); parent == "." || e.kinds[parent] == kindDir {
			return e.root + c, e.kinds[c[1:]], nil
		}
	}
	dir, base := filepath.Split(linkname)
	dir, err := fs.RootPath(e.root, dir)
	if err != nil {
		return "", 0, err
	}
	target := filepath.Join(dir, base)
	if !strings.HasPrefix(target, e.root) {
		target = e.root
	}
	return target, e.kinds[strings.TrimPrefix(target, e.root+"/")], nil
}

// made records rel, of kind k, as made in the dir parent.
func (e *extractor) made(parent, rel string, k kind) {
	if parent == "." {
		parent = ""
	}
	e.kinds[rel] = k
	if parent == "" {
		return
	}
	if e.children[parent] == nil {
		e.children[parent] = map[string]struct{}{}
	}
	e.children[parent][rel] = struct{}{}
}

// forget drops rel, removed, and all it held.
func (e *extractor) forget(rel string) {
	k, ok := e.kinds[rel]
	if !ok {
		return
	}
	delete(e.kinds, rel)
	if k == kindDir {
		for c := range e.children[rel] {
			e.forget(c)
		}
		delete(e.children, rel)
	}
}

// setDirTimes sets each dir entry's times, once nothing more is made in
// it, resolving its name as archive.Apply does when it is no longer a dir
// with no symlink on its way.
func (e *extractor) setDirTimes() error {
	for _, d := range e.dirs {
		p := e.abs(d.rel)
		if e.kinds[d.rel] != kindDir {
			var err error
			if p, err = fs.RootPath(e.root, d.name); err != nil {
				return err
			}
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, d.times[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("failed call to UtimesNanoAt for %s: %w", p, err)
		}
	}
	return nil
}

func (e *extractor) abs(rel string) string {
	if rel == "" {
		return e.root
	}
	return e.root + "/" + rel
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// tarTimes is the atime and mtime archive.Apply gives an entry: the
// later of its access and modification times, and its modification
// time, each the epoch when out of range.
func tarTimes(hdr *tar.Header) [2]unix.Timespec {
	atime := hdr.AccessTime
	if atime.Before(hdr.ModTime) {
		atime = hdr.ModTime
	}
	return [2]unix.Timespec{timespec(atime), timespec(hdr.ModTime)}
}

func timespec(t time.Time) unix.Timespec {
	if t.Before(time.Unix(0, 0)) || t.After(time.Unix(0, 1<<63-1)) {
		t = time.Unix(0, 0)
	}
	return unix.NsecToTimespec(t.UnixNano())
}

// futimens sets the times of the file open as fd (utimensat with no
// path, which x/sys/unix does not offer).
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
