package userns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// Plan is what Check found: the maps the namespace gets and the helpers
// that write them.
type Plan struct {
	// Maps are the namespace's maps: the user's own ids as 0, then the
	// subordinate ranges.
	Maps Maps
	// Warning, when set, says why only the user's own ids are mapped and
	// how to fix it. The build then works as long as every file it makes
	// is owned by root (in the image); the first that is not fails it with
	// an *UnmappedError.
	Warning string
	// newuidmap and newgidmap are the helpers' paths; "" with own ids
	// only, whose maps this process writes itself.
	newuidmap, newgidmap string
}

// sysctl files that disable user namespaces; variables so tests can
// point them elsewhere.
var (
	maxUserNamespaces = "/proc/sys/user/max_user_namespaces"
	unprivUsernsClone = "/proc/sys/kernel/unprivileged_userns_clone" // Debian and Ubuntu kernels
)

// Check checks every prerequisite of a rootless build by the current user
// that can be checked without running anything, and returns what the
// namespace will map. A missing one is a *PrereqError.
//
// A user without subordinate ids in /etc/subuid or /etc/subgid is no
// error: only the user's own ids are mapped, and Plan.Warning says so.
func Check() (*Plan, error) {
	if err := checkSysctls(); err != nil {
		return nil, err
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	name := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	subUIDs, err := subIDs(subUIDFile, name, uid)
	if err != nil {
		return nil, err
	}
	subGIDs, err := subIDs(subGIDFile, name, uid)
	if err != nil {
		return nil, err
	}
	var missing []string
	if len(subUIDs) == 0 {
		missing = append(missing, "uids in "+subUIDFile)
	}
	if len(subGIDs) == 0 {
		missing = append(missing, "gids in "+subGIDFile)
	}
	if len(missing) > 0 {
		own := Maps{UIDs: IDMap{{Outside: uid, Count: 1}}, GIDs: IDMap{{Outside: gid, Count: 1}}}
		return &Plan{Maps: own, Warning: fmt.Sprintf(
			"%s has no subordinate %s: only your own ids are mapped, so a file owned by anyone else fails the build (%s)",
			name, strings.Join(missing, " and no subordinate "), SubIDFix(name, minSubIDs))}, nil
	}
	p := &Plan{Maps: Maps{UIDs: stack(uid, subUIDs), GIDs: stack(gid, subGIDs)}}
	if p.newuidmap, err = idmapHelper("newuidmap"); err != nil {
		return nil, err
	}
	if p.newgidmap, err = idmapHelper("newgidmap"); err != nil {
		return nil, err
	}
	return p, nil
}

// checkSysctls refuses the settings that forbid unprivileged user
// namespaces.
func checkSysctls() error {
	for _, s := range []struct{ file, name, bad, fix string }{
		{maxUserNamespaces, "user.max_user_namespaces", "0", "sysctl -w user.max_user_namespaces=15000"},
		{unprivUsernsClone, "kernel.unprivileged_userns_clone", "0", "sysctl -w kernel.unprivileged_userns_clone=1"},
	} {
		b, err := os.ReadFile(s.file)
		if err != nil || strings.TrimSpace(string(b)) != s.bad {
			continue // absent: the kernel has no such switch
		}
		return &PrereqError{
			Missing: fmt.Sprintf("user namespaces are disabled for users other than root (sysctl %s = %s)", s.name, s.bad),
			Fix:     fmt.Sprintf("as root, run: %s, and add it to /etc/sysctl.d/ to keep it", s.fix),
		}
	}
	return nil
}

// idmapHelper finds newuidmap or newgidmap in PATH and checks that it can
// write maps: setuid root, or given the capability by a file capability.
func idmapHelper(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", &PrereqError{
			Missing: name + " is not installed (it maps your subordinate ids; none is in PATH)",
			Fix:     "as root, install it: apt-get install uidmap (Debian, Ubuntu), dnf install shadow-utils (Fedora)",
		}
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("checking %s: %w", p, err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&fs.ModeSetuid != 0 && st.Uid == 0 {
		return p, nil
	}
	if hasFileCaps(p) {
		return p, nil
	}
	return "", &PrereqError{
		Missing: fmt.Sprintf("%s is neither setuid root nor given the capability to map ids", p),
		Fix:     "as root, reinstall it: apt-get install --reinstall uidmap (Debian, Ubuntu), or chmod u+s " + p,
	}
}

// hasFileCaps reports whether the file at p carries file capabilities.
func hasFileCaps(p string) bool {
	_, err := syscall.Getxattr(p, "security.capability", nil)
	return err == nil || errors.Is(err, syscall.ERANGE)
}
