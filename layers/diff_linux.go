package layers

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/bufpipe"
	"github.com/stratabuild/strata/internal/rootfs"
	"github.com/stratabuild/strata/internal/userns"
)

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// Diff writes the changes an overlay upper dir holds over its lower stack
// as an uncompressed layer tar. The overlay must be unmounted and must have
// been mounted with redirect_dir=off and metacopy=off (Mount does that).
//
// It reads only the upper dir and, for each entry there, the same path in
// the lower dirs, so it costs O(entries in the upper dir), not O(rootfs).
//
// What it writes, in path order, parents before children:
//   - a new or changed entry, with all its xattrs except overlay-private
//     ones (trusted.overlay.*, user.overlay.*) and security.selinux; a dir
//     that was deleted and made again is followed by DIR/.wh..wh..opq and
//     its new children;
//   - .wh.NAME for a deleted path that exists in the lower stack;
//   - unchanged parent dirs of those entries, so the tar stands alone.
//
// It leaves out: whiteouts of paths the lower stack lacks, opaque markers
// on dirs the lower stack lacks, files copied up without a change (same
// type, content, mode, owner, xattrs and mtime once clamped), dirs only
// touched (a file made and removed in them: same mode, owner and xattrs),
// sockets and Skip'ed paths. A name starting with .wh. that is not a
// whiteout is an error: in the layer it would delete a lower file. Files
// hardlinked together in the upper dir stay tar
// hardlinks. Headers carry no user or group names, no atime or ctime, mtimes
// in whole seconds clamped to Epoch, and use PAX records only when USTAR
// cannot hold the entry.
//
// In a user namespace (a rootless build) an entry whose owner the id maps
// cannot represent is an error, a *userns.UnmappedError: it reads as the
// overflow id there, which the layer must not carry.
//
// Unless o.KeepUpper is set, Diff then edits the upper dir to hold exactly
// what the tar holds, ready for Store.Commit: a snapshot that is a
// function of its diffID alone, whatever chain it was made on.
func Diff(ctx context.Context, w io.Writer, o DiffOptions) (DiffStats, error) {
	if o.TrimOnly && o.KeepUpper {
		return DiffStats{}, fmt.Errorf("diffing %s: TrimOnly with KeepUpper does nothing", o.Upper)
	}
	d, err := newDiffer(ctx, o)
	if err != nil {
		return DiffStats{}, fmt.Errorf("diffing %s: %w", o.Upper, err)
	}
	start := time.Now()
	root, err := filepath.Abs(o.Upper)
	if err != nil {
		return DiffStats{}, fmt.Errorf("diffing %s: %w", o.Upper, err)
	}
	if o.TrimOnly {
		err = d.walk("", root, o.Lowers)
	} else {
		err = d.writeTar(ctx, w, root)
	}
	if err != nil {
		return d.stats, fmt.Errorf("diffing %s: %w", o.Upper, err)
	}
	if !o.KeepUpper {
		for _, e := range d.edits {
			if err := e(); err != nil {
				return d.stats, fmt.Errorf("trimming upper dir %s: %w", o.Upper, err)
			}
		}
		// The snapshot gets the tar's mtimes (whole seconds, clamped),
		// children before their dirs: a step on it sees what a step on
		// the layer pulled from a cache sees.
		for i := len(d.times) - 1; i >= 0; i-- {
			t := d.times[i]
			ts := []unix.Timespec{unix.NsecToTimespec(t.mtime.UnixNano()), unix.NsecToTimespec(t.mtime.UnixNano())}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, t.abs, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil && !errors.Is(err, unix.ENOENT) {
				return d.stats, fmt.Errorf("setting the mtime of %s: %w", t.abs, err)
			}
		}
	}
	d.log.Debug("diffed upper dir", "upper", o.Upper, "added", d.stats.Added,
		"modified", d.stats.Modified, "deleted", d.stats.Deleted, "took", time.Since(start),
		"readAheadPeak", d.ahead.peak.Load())
	return d.stats, nil
}

// newDiffer makes the differ of a Diff with o.
func newDiffer(ctx context.Context, o DiffOptions) (*differ, error) {
	// A lower dir that is gone would read as empty: whiteouts of its
	// files, and the opaque markers over its dirs, would be left out.
	for _, l := range o.Lowers {
		var st unix.Stat_t
		if err := unix.Stat(l, &st); err != nil {
			return nil, fmt.Errorf("lower dir: %w", &fs.PathError{Op: "stat", Path: l, Err: err})
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return nil, fmt.Errorf("lower dir %s is not a directory", l)
		}
	}
	d := &differ{
		ctx:   ctx,
		o:     o,
		links: map[fileID]string{},
		absOf: map[*tar.Header]string{},
		log:   discardIfNil(o.Log),
	}
	if ovl().rootless {
		m, err := userns.CurrentMaps()
		if err != nil {
			return nil, err
		}
		d.maps = &m
	}
	return d, nil
}

// writeTar walks the upper dir root into a tar written to w. w gets the
// tar on a goroutine of its own, through a buffer: reading the files and
// what w does with them (the sha256 of a diffID, a compressor) run at
// once, on two cores. w has all it gets once writeTar returns.
func (d *differ) writeTar(ctx context.Context, w io.Writer, root string) error {
	pipe := bufpipe.NewSize(diffChunk, diffChunks)
	copied := make(chan error, 1)
	go func() {
		_, err := pipe.WriteTo(w)
		pipe.CloseRead(cmp.Or(err, errDiffStopped)) // w's error fails the next Write
		copied <- err
	}()
	d.tw = tar.NewWriter(ctxWriter{ctx, pipe})
	err := d.walk("", root, d.o.Lowers)
	if err == nil {
		err = d.tw.Close()
	}
	pipe.CloseWrite(err)
	if cerr := <-copied; err == nil {
		err = cerr
	}
	return err
}

// The buffer between a diff and its writer: 1 MiB, in chunks as large as
// the differ's reads of a file.
const (
	diffChunk  = 256 << 10
	diffChunks = 4
)

var errDiffStopped = errors.New("the diff's writer stopped")

type fileID struct{ dev, ino uint64 }

// ctxWriter stops a long write (a big file) when its context ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

type differ struct {
	ctx     context.Context
	o       DiffOptions
	tw      *tar.Writer // nil with TrimOnly
	stats   DiffStats
	links   map[fileID]string      // tar name of the first path of an upper inode with nlink > 1
	pending []*tar.Header          // unchanged parent dirs not written yet, outermost first
	edits   []func() error         // trims of the upper dir, run after the tar is written
	times   []mtimeEdit            // the tar's mtimes, set on the upper dir after the edits
	absOf   map[*tar.Header]string // the upper path of a header, with an epoch
	buf     []byte                 // content copy buffer, made on first use
	zeros   []byte                 // holes of sparse files, made on first use
	log     *slog.Logger
	maps    *userns.Maps // the id maps of a rootless build; nil as root
	ahead   aheadBudget  // the file content its prefetchers hold
}

// mtimeEdit is the mtime a tar entry got, for its upper path.
type mtimeEdit struct {
	abs   string
	mtime time.Time
}

// entry is one path of the upper dir, or of the lower stack.
type entry struct {
	abs    string
	st     unix.Stat_t
	xattrs map[string]string // the layer's (rootfs.LayerXattr)
	// private are the names of its overlay-private xattrs other than the
	// opaque marker; marked says whether it has the marker (an opaque
	// dir if its value is "y").
	private []string
	marked  bool
	// content is the file's content read ahead (see prefetch), or nil;
	// dropped once written.
	content []byte
}

func (d *differ) stat(abs string) (*entry, error) {
	e := &entry{abs: abs}
	if err := unix.Lstat(abs, &e.st); err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: abs, Err: err}
	}
	return e, d.readXattrs(e)
}

// readXattrs lists e's xattrs once, reading the values of the layer's.
func (d *differ) readXattrs(e *entry) error {
	names, err := rootfs.XattrNames(e.abs)
	if err != nil {
		return err
	}
	ovl := ovl()
	for _, name := range names {
		switch {
		case name == ovl.opaque:
			e.marked = true
		case strings.HasPrefix(name, ovl.prefix):
			e.private = append(e.private, name)
		case rootfs.LayerXattr(name):
			v, err := rootfs.Xattr(e.abs, name)
			if err != nil {
				return err
			}
			if v == nil {
				continue // removed meanwhile
			}
			if e.xattrs == nil {
				e.xattrs = map[string]string{}
			}
			e.xattrs[name] = string(v)
		}
	}
	return nil
}

// opaque reports whether the dir e is marked opaque.
func (e *entry) opaque() (bool, error) {
	if !e.marked {
		return false, nil
	}
	return isOpaque(e.abs)
}

func (e *entry) fmt() uint32 { return e.st.Mode & unix.S_IFMT }

func (e *entry) isWhiteout() bool {
	return e.fmt() == unix.S_IFCHR && e.st.Rdev == 0
}

// looked is what walk needs of one entry of an upper dir: the entry, and
// what the lower dirs hold at its path (see lookupLower).
type looked struct {
	up      *entry
	upErr   error
	low     *entry
	lowDirs []string
	lowErr  error
}

// look looks up the entry name of the upper dir abs, whose lower dirs are
// lowers; the lower dirs only if the upper entry could be read.
func (d *differ) look(abs, name string, lowers []string) looked {
	var l looked
	l.up, l.upErr = d.stat(filepath.Join(abs, name))
	if l.upErr == nil {
		l.low, l.lowDirs, l.lowErr = d.lookupLower(lowers, name)
	}
	return l
}

// lookupLower finds name in the lower dirs of its parent (top first). It
// returns the topmost entry (nil if none or whited out) and, if that is a
// dir, the lower dirs that make up its merged contents, top first.
func (d *differ) lookupLower(lowers []string, name string) (*entry, []string, error) {
	for i, l := range lowers {
		e := &entry{abs: filepath.Join(l, name)}
		err := unix.Lstat(e.abs, &e.st)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			return nil, nil, &fs.PathError{Op: "lstat", Path: e.abs, Err: err}
		}
		if err := d.readXattrs(e); err != nil {
			return nil, nil, err
		}
		if e.isWhiteout() {
			return nil, nil, nil
		}
		if e.fmt() != unix.S_IFDIR {
			return e, nil, nil
		}
		dirs := []string{e.abs}
		opaque, err := e.opaque()
		if err != nil {
			return nil, nil, err
		}
		for j := i + 1; j < len(lowers) && !opaque; j++ { // an opaque dir hides the layers below
			q := filepath.Join(lowers[j], name)
			var st unix.Stat_t
			err := unix.Lstat(q, &st)
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
				continue
			}
			if err != nil {
				return nil, nil, &fs.PathError{Op: "lstat", Path: q, Err: err}
			}
			if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				break // a file or whiteout ends the merge
			}
			dirs = append(dirs, q)
			if opaque, err = isOpaque(q); err != nil {
				return nil, nil, err
			}
		}
		return e, dirs, nil
	}
	return nil, nil, nil
}

// walk diffs the upper dir abs (tar path rel, "" for the root) whose lower
// dirs are lowers.
func (d *differ) walk(rel, abs string, lowers []string) error {
	if err := d.ctx.Err(); err != nil {
		return err
	}
	ents, err := os.ReadDir(abs) // sorted by name
	if err != nil {
		return err
	}
	pre := d.prefetch(abs, ents, lowers)
	if pre != nil {
		defer pre.close()
	}
	for i, de := range ents {
		var l looked
		if pre != nil {
			l = pre.get(i)
		}
		name := de.Name()
		crel := path.Join(rel, name)
		cabs := filepath.Join(abs, name)
		if d.o.Skip != nil && d.o.Skip("/"+crel) {
			d.edit(func() error { return os.RemoveAll(cabs) })
			continue
		}
		if pre == nil {
			l = d.look(abs, name, lowers)
		}
		up, low, lowDirs := l.up, l.low, l.lowDirs
		if l.upErr != nil {
			return l.upErr
		}
		if d.maps != nil && !up.isWhiteout() {
			// An owner outside the maps reads as the overflow id: it
			// would be committed wrong.
			if err := userns.CheckOwner(*d.maps, "/"+crel, up.st.Uid, up.st.Gid); err != nil {
				return err
			}
		}
		if !up.isWhiteout() && strings.HasPrefix(name, whiteoutPrefix) {
			// In a layer the name would delete a lower file (or hide a
			// whole dir, or fail to unpack), though the step saw a file.
			return fmt.Errorf("/%s: a layer cannot hold a file named %q: names starting with %q mark deletions in layers; rename it, or remove it in the step that makes it", crel, name, whiteoutPrefix)
		}
		d.trimOverlayXattrs(up)
		if l.lowErr != nil {
			return l.lowErr
		}
		switch {
		case up.isWhiteout():
			if low == nil {
				d.edit(func() error { return os.Remove(cabs) })
				continue
			}
			if err := d.writeWhiteout(rel, name, up); err != nil {
				return err
			}
			d.stats.Deleted++
		case up.fmt() == unix.S_IFDIR:
			if err := d.dir(crel, up, low, lowDirs); err != nil {
				return err
			}
		case up.fmt() == unix.S_IFSOCK:
			d.log.Debug("leaving out socket", "path", "/"+crel)
			d.edit(func() error { return os.Remove(cabs) })
		default:
			if err := d.nonDir(crel, up, low); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *differ) dir(rel string, up, low *entry, lowDirs []string) error {
	opaque, err := up.opaque()
	if err != nil {
		return err
	}
	lowIsDir := low != nil && low.fmt() == unix.S_IFDIR
	if opaque && !lowIsDir {
		// The kernel marks dirs opaque when they are renamed in or made
		// over a whiteout; over nothing the marker means nothing.
		opaque = false
		abs := up.abs
		d.edit(func() error { return ignoreNoData(unix.Lremovexattr(abs, ovl().opaque)) })
	}
	hdr := d.header(rel, up, "")
	switch {
	case opaque:
		if err := d.write(hdr); err != nil {
			return err
		}
		opq := &tar.Header{Typeflag: tar.TypeReg, Name: rel + "/" + opaqueMarker, Mode: 0o644, ModTime: hdr.ModTime}
		if err := d.write(opq); err != nil {
			return err
		}
		d.stats.Modified++
		lowDirs = nil
	case !lowIsDir:
		if err := d.write(hdr); err != nil {
			return err
		}
		if low == nil {
			d.stats.Added++
		} else {
			d.stats.Modified++
		}
	case !sameMeta(up, low):
		if err := d.write(hdr); err != nil {
			return err
		}
		d.stats.Modified++
	default:
		d.pending = append(d.pending, hdr)
	}
	if err := d.walk(rel, up.abs, lowDirs); err != nil {
		return err
	}
	if n := len(d.pending); n > 0 && d.pending[n-1] == hdr {
		// Unchanged but for its mtime (a file made and removed in it, a
		// mount stub's parent): no entry in the layer, and none in the
		// snapshot, emptied by the edits of its children above. The
		// lower's dir shows through, as it does over the layer pulled
		// from a cache; and the snapshot, which the store shares with
		// every chain whose layer has this diffID, is the layer's alone
		// (kept, it would add the dir over a chain without it).
		d.pending = d.pending[:n-1]
		delete(d.absOf, hdr)
		abs := up.abs
		d.edit(func() error { return os.Remove(abs) })
	}
	return nil
}

func (d *differ) nonDir(rel string, up, low *entry) error {
	linked := up.fmt() == unix.S_IFREG && up.st.Nlink > 1
	if low != nil && !linked {
		same, err := sameEntry(up, low)
		if err != nil {
			return err
		}
		// A copy-up keeps its lower's mtime; one the step set (touch
		// -d, a rewrite) is a change, as BuildKit's differ takes it,
		// unless the layer would record the lower's mtime anyway (both
		// clamped to the epoch). A name copied up out of a hardlink
		// group is not one, as in BuildKit: recording it would store
		// every name of the group again, whole, for a chmod -R that
		// changed nothing (in the image the names stay linked; in an
		// overlay, a write to one parts them anyway).
		same = same && d.mtime(up).Equal(d.mtime(low))
		if same {
			abs := up.abs
			d.edit(func() error { return os.Remove(abs) })
			return nil
		}
	}
	var linkTarget string
	if linked {
		id := fileID{up.st.Dev, up.st.Ino}
		if first, ok := d.links[id]; ok {
			linkTarget = first
		} else {
			d.links[id] = rel
		}
	}
	hdr := d.header(rel, up, linkTarget)
	if hdr.Typeflag == tar.TypeSymlink {
		target, err := os.Readlink(up.abs)
		if err != nil {
			return err
		}
		hdr.Linkname = target
	}
	var body *entry
	if hdr.Typeflag == tar.TypeReg {
		body = up
	}
	if err := d.writeFile(hdr, body); err != nil {
		return err
	}
	if low == nil {
		d.stats.Added++
	} else {
		d.stats.Modified++
	}
	return nil
}

func (d *differ) writeWhiteout(dirRel, name string, up *entry) error {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     path.Join(dirRel, whiteoutPrefix+name),
		Mode:     0o644,
		ModTime:  d.mtime(up),
	}
	return d.write(hdr)
}

// header builds the tar header of an upper entry; linkTarget makes it a
// hardlink.
func (d *differ) header(rel string, e *entry, linkTarget string) *tar.Header {
	hdr := &tar.Header{
		Name:    rel,
		Mode:    int64(e.st.Mode & 0o7777),
		Uid:     int(e.st.Uid),
		Gid:     int(e.st.Gid),
		ModTime: d.mtime(e),
	}
	// The upper entry gets the tar's mtime: a dir always, as trimming
	// it changes its mtime to the trim's time and a later diff of the
	// snapshot must write this tar again (also without an epoch, when a
	// second may pass in between); a file with an epoch, unless it has
	// that mtime already.
	if e.abs != "" && (e.fmt() == unix.S_IFDIR || (d.o.Epoch != nil && !hasMtime(e, hdr.ModTime))) {
		d.absOf[hdr] = e.abs
	}
	switch e.fmt() {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if e.fmt() == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor = int64(unix.Major(e.st.Rdev))
		hdr.Devminor = int64(unix.Minor(e.st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = e.st.Size
	}
	if linkTarget != "" {
		hdr.Typeflag = tar.TypeLink
		hdr.Linkname = linkTarget
		hdr.Size = 0
	}
	for _, k := range sortedKeys(e.xattrs) {
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords["SCHILY.xattr."+k] = e.xattrs[k]
	}
	return hdr
}

// hasMtime reports whether e's mtime is t, to the nanosecond.
func hasMtime(e *entry, t time.Time) bool {
	return e.st.Mtim.Sec == t.Unix() && e.st.Mtim.Nsec == int64(t.Nanosecond())
}

func (d *differ) mtime(e *entry) time.Time {
	t := time.Unix(e.st.Mtim.Sec, 0).UTC()
	if d.o.Epoch != nil && t.After(*d.o.Epoch) {
		t = d.o.Epoch.Truncate(time.Second).UTC()
	}
	return t
}

// write writes hdr, after any pending parent dirs.
func (d *differ) write(hdr *tar.Header) error { return d.writeFile(hdr, nil) }

// writeFile writes hdr, after any pending parent dirs, then the content of
// the file body if body is set: read ahead, or read now. With TrimOnly it
// only notes what it would write.
func (d *differ) writeFile(hdr *tar.Header, body *entry) error {
	for _, p := range d.pending {
		if err := d.writeHeader(p); err != nil {
			return err
		}
	}
	d.pending = d.pending[:0]
	if err := d.writeHeader(hdr); err != nil {
		return err
	}
	if body == nil || hdr.Size == 0 || d.tw == nil {
		return nil
	}
	if int64(len(body.content)) == hdr.Size {
		_, err := d.tw.Write(body.content)
		body.content = nil
		if err != nil {
			return fmt.Errorf("writing %q: %w", hdr.Name, err)
		}
		return nil
	}
	sparse := body.st.Blocks*512 < hdr.Size
	f, err := rootfs.OpenFile(body.abs, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := d.copyContent(f, hdr.Size, sparse); err != nil {
		return fmt.Errorf("writing %q: %w", hdr.Name, err)
	}
	return nil
}

// writeHeader writes hdr to the tar (nowhere with TrimOnly) and notes it
// written.
func (d *differ) writeHeader(hdr *tar.Header) error {
	if d.tw != nil {
		if err := d.tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("writing %q: %w", hdr.Name, err)
		}
	}
	d.written(hdr)
	return nil
}

// copyContent copies size bytes of f to the tar. For a sparse file it
// writes the holes from memory instead of reading zeros from the kernel.
func (d *differ) copyContent(f *os.File, size int64, sparse bool) error {
	if d.buf == nil {
		d.buf = make([]byte, 256<<10)
	}
	if sparse && d.zeros == nil {
		d.zeros = make([]byte, 256<<10)
	}
	var off int64
	for off < size {
		data, hole := off, size
		if sparse {
			var err error
			data, err = unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
			if errors.Is(err, unix.ENXIO) { // no data past off
				data = size
			} else if err != nil {
				sparse = false // the file system cannot tell: read it all
				data = off
			}
			if sparse && data < size {
				if hole, err = unix.Seek(int(f.Fd()), data, unix.SEEK_HOLE); err != nil {
					return err
				}
			}
			data, hole = min(data, size), min(hole, size)
		}
		for off < data {
			n := min(data-off, int64(len(d.zeros)))
			if _, err := d.tw.Write(d.zeros[:n]); err != nil {
				return err
			}
			off += n
		}
		if off >= size {
			break
		}
		n, err := io.CopyBuffer(d.tw, io.NewSectionReader(f, off, hole-off), d.buf)
		if err != nil {
			return err
		}
		if n != hole-off {
			return fmt.Errorf("file shrank to %d bytes while diffing", off+n)
		}
		off = hole
	}
	return nil
}

// edit adds f to the trims of the upper dir. f runs after the tar is
// written: it captures paths, not entries, which may hold content.
func (d *differ) edit(f func() error) { d.edits = append(d.edits, f) }

// written notes that hdr is in the tar: its upper path gets its mtime.
func (d *differ) written(hdr *tar.Header) {
	if abs, ok := d.absOf[hdr]; ok {
		d.times = append(d.times, mtimeEdit{abs: abs, mtime: hdr.ModTime})
		delete(d.absOf, hdr)
	}
}

// trimOverlayXattrs drops overlay-private xattrs other than the opaque
// marker from an upper entry (origin, impure and the like describe this
// mount, not the layer).
func (d *differ) trimOverlayXattrs(up *entry) {
	if len(up.private) == 0 {
		return
	}
	abs, priv := up.abs, up.private
	d.edit(func() error {
		for _, k := range priv {
			if err := ignoreNoData(unix.Lremovexattr(abs, k)); err != nil {
				return fmt.Errorf("removing xattr %s of %s: %w", k, abs, err)
			}
		}
		return nil
	})
}

func ignoreNoData(err error) error {
	if errors.Is(err, unix.ENODATA) {
		return nil
	}
	return err
}

// sameMeta reports whether two entries have the same type, mode, owner and
// layer xattrs.
func sameMeta(a, b *entry) bool {
	if a.st.Mode != b.st.Mode || a.st.Uid != b.st.Uid || a.st.Gid != b.st.Gid {
		return false
	}
	if len(a.xattrs) != len(b.xattrs) {
		return false
	}
	for k, v := range a.xattrs {
		if bv, ok := b.xattrs[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// sameEntry reports whether a copied-up non-dir equals its lower original:
// same metadata and the same content, link target or device number.
func sameEntry(up, low *entry) (bool, error) {
	if !sameMeta(up, low) {
		return false, nil
	}
	switch up.fmt() {
	case unix.S_IFREG:
		if up.st.Size != low.st.Size {
			return false, nil
		}
		return sameContent(up.abs, low.abs)
	case unix.S_IFLNK:
		a, err := os.Readlink(up.abs)
		if err != nil {
			return false, err
		}
		b, err := os.Readlink(low.abs)
		return a == b, err
	case unix.S_IFCHR, unix.S_IFBLK:
		return up.st.Rdev == low.st.Rdev, nil
	}
	return true, nil
}

func sameContent(a, b string) (bool, error) {
	fa, err := rootfs.OpenFile(a, os.O_RDONLY, 0)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := rootfs.OpenFile(b, os.O_RDONLY, 0)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		aDone := errors.Is(ea, io.EOF) || errors.Is(ea, io.ErrUnexpectedEOF)
		bDone := errors.Is(eb, io.EOF) || errors.Is(eb, io.ErrUnexpectedEOF)
		if ea != nil && !aDone {
			return false, ea
		}
		if eb != nil && !bDone {
			return false, eb
		}
		if aDone || bDone {
			return aDone == bDone, nil
		}
	}
}
