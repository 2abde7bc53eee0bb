package sandbox

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// runs is held shared by each Run while its runtime may create cgroups, and
// exclusively to remove the parent cgroup, so a Run never removes the
// parent under another Run of this process.
var runs sync.RWMutex

// parentLock is the file whose flock does for processes what runs does
// within one: each Run holds it shared while its runtime may create
// cgroups, and the parent is removed only under an exclusive one. Without
// it, one build could remove the empty parent after another's runtime made
// it and before it made the container's cgroup under it: that runtime then
// failed ("mkdir /sys/fs/cgroup/blkio/strata/strata-…: no such file or
// directory").
var parentLock = "/run/strata-cgroup.lock"

// lockParent takes parentLock's flock, shared or exclusive (how: unix.LOCK_SH
// or unix.LOCK_EX, with unix.LOCK_NB not to wait). ok is false when another
// process holds it the other way, or the file cannot be opened (no
// writable /run, as in a rootless build, where the parent is not ours to
// remove anyway).
func lockParent(how int) (unlock func(), ok bool) {
	f, err := os.OpenFile(parentLock, os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return func() {}, false
	}
	for {
		if err = unix.Flock(int(f.Fd()), how); !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return func() {}, false
	}
	return func() { f.Close() }, true
}

// holdParent holds the parent cgroup for a Run: call the result when its
// runtime has exited and its cgroups are gone.
func holdParent() (release func()) {
	runs.RLock()
	unlock, _ := lockParent(unix.LOCK_SH)
	return func() {
		unlock()
		runs.RUnlock()
	}
}

// removeCgroupParent removes /strata from every cgroup hierarchy when no
// other Run of this process, nor of another, is active and it has no
// children (EBUSY is fine). Best effort: a leftover empty parent is
// harmless.
func removeCgroupParent() {
	if !runs.TryLock() {
		return
	}
	defer runs.Unlock()
	unlock, ok := lockParent(unix.LOCK_EX | unix.LOCK_NB)
	defer unlock()
	if !ok {
		return
	}
	for _, m := range cgroupMounts() {
		_ = unix.Rmdir(filepath.Join(m, cgroupParent))
	}
}

// cgroupMounts returns the mount points of the cgroup (v1) and cgroup2
// hierarchies mounted at their root, as the runtime uses them.
func cgroupMounts() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(s.Text(), " - ")
		fields, postFields := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(postFields) < 1 {
			continue
		}
		if (postFields[0] == "cgroup" || postFields[0] == "cgroup2") && fields[3] == "/" {
			out = append(out, unescapeMountinfo(fields[4]))
		}
	}
	return out
}

// unescapeMountinfo undoes the octal escapes (\040 for space) of a
// mountinfo path.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			ok := true
			for _, d := range s[i+1 : i+4] {
				if d < '0' || d > '7' {
					ok = false
				}
				c = c*8 + byte(d-'0')
			}
			if ok {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
