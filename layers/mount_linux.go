package layers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Mounted is an overlay mounted by Mount.
type Mounted struct {
	target string
	work   string
	empty  string // the empty lower dir of a scratch mount, removed on Unmount

	mu        sync.Mutex
	unmounted bool
	err       error
}

// Target returns the dir the merged view is mounted on.
func (m *Mounted) Target() string { return m.target }

// Mount mounts an overlay of o.Lowers (top first) under o.Upper on o.Target
// with index=off,redirect_dir=off,metacopy=off, which Diff relies on, and
// in a user namespace (a rootless build) with userxattr: overlay then keeps
// its private xattrs, the opaque marker included, as user.overlay.*; there
// redirect_dir=nofollow stands for off, which userxattr refuses (off
// follows redirects, which user xattrs must not steer). Each
// lower dir is passed on its own (fsconfig "lowerdir+"), so hundreds of
// layers fit; mount(2), whose options must fit in one page, is used only
// where the kernel lacks fsopen or "lowerdir+" (before Linux 6.8). With no
// lowers (scratch) an empty dir stands in. A dir listed twice (an image
// may list one layer twice, and a layer has one snapshot) is passed once,
// where it is topmost, since overlay refuses a lower dir it has already
// (ELOOP): below its other place it shows nothing that place does not
// cover, as every path it holds, whiteouts and opaque dirs included, is
// in the same layer above. The overlay is volatile where
// the kernel can (Linux 5.10 on): it never syncs the upper dir's
// filesystem — not at unmount, where overlay otherwise syncs all of it,
// and not for a step's own fsyncs — since nothing a step writes needs to
// be durable until its snapshot is published (see the package doc's
// crash safety; an upper dir left by a crash is discarded, never
// mounted again). The caller unmounts, on every path (defer
// m.Unmount()); a cancelled ctx does not unmount by itself, since a
// runtime still starting in the mount would then write into the bare
// target dir.
func Mount(ctx context.Context, o MountOptions) (*Mounted, error) {
	if o.Upper == "" || o.Work == "" || o.Target == "" {
		return nil, errors.New("mounting overlay: upper, work and target dirs are required")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("mounting overlay on %s: %w", o.Target, err)
	}
	m := &Mounted{target: o.Target, work: o.Work}
	lowers := topmost(o.Lowers)
	if len(lowers) == 0 {
		empty, err := os.MkdirTemp(filepath.Dir(o.Work), ".empty-lower-")
		if err != nil {
			return nil, fmt.Errorf("mounting overlay on %s: %w", o.Target, err)
		}
		m.empty = empty
		lowers = []string{empty}
	}
	err := mountNew(lowers, o)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, errNoLowerdirAppend) {
		err = mountLegacy(lowers, o)
	}
	if err != nil {
		if m.empty != "" {
			os.Remove(m.empty)
		}
		return nil, fmt.Errorf("mounting overlay on %s: %w", o.Target, err)
	}
	return m, nil
}

// topmost returns lowers (top first) with each dir at its first place
// only.
func topmost(lowers []string) []string {
	seen := make(map[string]bool, len(lowers))
	out := make([]string, 0, len(lowers))
	for _, l := range lowers {
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}

// errNoLowerdirAppend: the kernel has fsopen but overlay predates the
// "lowerdir+" option (Linux < 6.8).
var errNoLowerdirAppend = errors.New(`overlay lacks fsconfig "lowerdir+"`)

func mountNew(lowers []string, o MountOptions) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("fsopen: %w", err)
	}
	defer unix.Close(fd)
	set := func(key, value string) error {
		if err := unix.FsconfigSetString(fd, key, value); err != nil {
			return fmt.Errorf("overlay option %s=%s: %w%s", key, value, err, fsLog(fd))
		}
		return nil
	}
	for i, l := range lowers {
		if err := set("lowerdir+", l); err != nil {
			if i == 0 && errors.Is(err, unix.EINVAL) {
				return fmt.Errorf("%w: %w", errNoLowerdirAppend, err)
			}
			return err
		}
	}
	for _, kv := range [][2]string{
		{"upperdir", o.Upper}, {"workdir", o.Work},
		{"index", "off"}, {"redirect_dir", ovl().redirectDir}, {"metacopy", "off"},
	} {
		if err := set(kv[0], kv[1]); err != nil {
			return err
		}
	}
	if ovl().userxattr {
		if err := unix.FsconfigSetFlag(fd, "userxattr"); err != nil {
			return fmt.Errorf("overlay option userxattr: %w%s", err, fsLog(fd))
		}
	}
	// Linux 5.10 on: no sync of the upper dir's filesystem, neither the
	// syncfs of the whole filesystem at unmount nor a step's own fsyncs
	// (see volatile in Mount's doc).
	if err := unix.FsconfigSetFlag(fd, "volatile"); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("overlay option volatile: %w%s", err, fsLog(fd))
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("creating overlay: %w%s", err, fsLog(fd))
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fsmount: %w%s", err, fsLog(fd))
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, o.Target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// fsLog reads the kernel's messages about a failed fsconfig call.
func fsLog(fd int) string {
	var msgs []string
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}

func mountLegacy(lowers []string, o MountOptions) error {
	esc := func(p string) string {
		return strings.NewReplacer(`\`, `\\`, `:`, `\:`, `,`, `\,`).Replace(p)
	}
	var ls []string
	for _, l := range lowers {
		ls = append(ls, esc(l))
	}
	data := "lowerdir=" + strings.Join(ls, ":") + ",upperdir=" + esc(o.Upper) + ",workdir=" + esc(o.Work) +
		",index=off,redirect_dir=" + ovl().redirectDir + ",metacopy=off"
	if ovl().userxattr {
		data += ",userxattr"
	}
	err := unix.Mount("overlay", o.Target, "overlay", 0, data+",volatile")
	if errors.Is(err, unix.EINVAL) { // before Linux 5.10, or another option refused
		err = unix.Mount("overlay", o.Target, "overlay", 0, data)
	}
	if err != nil {
		return fmt.Errorf("mount(2): %w", err)
	}
	return nil
}

// Unmount unmounts the overlay and empties its work dir (the kernel leaves
// work/work behind). It is idempotent: later calls return the first result.
func (m *Mounted) Unmount() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.unmounted {
		return m.err
	}
	m.unmounted = true
	m.err = m.unmount()
	return m.err
}

func (m *Mounted) unmount() error {
	var err error
	for i := 0; ; i++ {
		err = unix.Unmount(m.target, 0)
		if !errors.Is(err, unix.EBUSY) || i == 10 {
			break
		}
		time.Sleep(time.Duration(i+1) * 10 * time.Millisecond)
	}
	if errors.Is(err, unix.EBUSY) {
		// Still busy (a process keeps a file open): detach it so the
		// upper dir is no longer written through this mount.
		err = unix.Unmount(m.target, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) { // EINVAL: not mounted
		return fmt.Errorf("unmounting overlay %s: %w", m.target, err)
	}
	if entries, err := os.ReadDir(m.work); err == nil {
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(m.work, e.Name())); err != nil {
				return fmt.Errorf("cleaning work dir: %w", err)
			}
		}
	}
	if m.empty != "" {
		if err := os.Remove(m.empty); err != nil {
			return fmt.Errorf("removing empty lower dir: %w", err)
		}
	}
	return nil
}

// UnmountStale detaches whatever is mounted on target, if anything: the
// mount of a process that was killed before it could unmount.
func UnmountStale(target string) error {
	err := unix.Unmount(target, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting %s: %w", target, err)
	}
	return nil
}
