package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/rootfs"
)

// execUser is the identity the process runs as.
type execUser struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups
	Home     string
}

type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// lookupUser resolves spec ("", name, uid, uid:gid, name:group, ...) against
// rootfs/etc/passwd and rootfs/etc/group, following runc's and docker's
// rules: the gid defaults to the passwd entry's (or 0); supplementary groups
// come from /etc/group when the user is in passwd and no group was given;
// HOME is the passwd entry's home (or /).
func lookupUser(rootfs, spec string) (execUser, error) {
	userArg, groupArg, _ := strings.Cut(spec, ":")
	if userArg == "" {
		userArg = "0"
	}
	u := execUser{Home: "/"}

	passwd, err := readPasswd(rootfs)
	if err != nil {
		return u, err
	}
	uid, numeric := parseID(userArg)
	var matched *passwdEntry
	for i := range passwd {
		if passwd[i].name == userArg || numeric && passwd[i].uid == uid {
			matched = &passwd[i]
			break
		}
	}
	switch {
	case matched != nil:
		u.UID, u.GID, u.Home = matched.uid, matched.gid, matched.home
	case numeric:
		u.UID = uid
	default:
		return u, fmt.Errorf("user %q is not in the image's /etc/passwd", userArg)
	}
	if groupArg == "" && matched == nil {
		return u, nil
	}

	groups, err := readGroup(rootfs)
	if err != nil {
		return u, err
	}
	if groupArg != "" {
		gid, numeric := parseID(groupArg)
		found := false
		for _, g := range groups {
			if g.name == groupArg || numeric && g.gid == gid {
				u.GID, found = g.gid, true
				break
			}
		}
		if !found && !numeric {
			return u, fmt.Errorf("group %q is not in the image's /etc/group", groupArg)
		}
		if !found {
			u.GID = gid
		}
		return u, nil
	}
	for _, g := range groups {
		for _, m := range g.members {
			if m == matched.name {
				u.Groups = append(u.Groups, g.gid)
				break
			}
		}
	}
	return u, nil
}

func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// readPasswd parses rootfs/etc/passwd; a missing file is an empty list.
func readPasswd(rootfs string) ([]passwdEntry, error) {
	var out []passwdEntry
	err := readColonFile(rootfs, "etc/passwd", func(f []string) {
		// name:password:uid:gid:gecos:home:shell
		if len(f) < 4 {
			return
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if f[0] == "" || !ok1 || !ok2 {
			return
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid, home: "/"}
		if len(f) > 5 && f[5] != "" {
			e.home = f[5]
		}
		out = append(out, e)
	})
	return out, err
}

// readGroup parses rootfs/etc/group; a missing file is an empty list.
func readGroup(rootfs string) ([]groupEntry, error) {
	var out []groupEntry
	err := readColonFile(rootfs, "etc/group", func(f []string) {
		// name:password:gid:member,member
		if len(f) < 3 {
			return
		}
		gid, ok := parseID(f[2])
		if f[0] == "" || !ok {
			return
		}
		e := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			e.members = strings.Split(f[3], ",")
		}
		out = append(out, e)
	})
	return out, err
}

// readColonFile calls line for each non-comment line of root/name split on
// ':'. Symlinks resolve inside root as in a chroot: an absolute target
// (/etc/passwd -> /usr/lib/passwd, as Nix-built images link) restarts at
// root, so nothing outside it is read.
func readColonFile(root, name string, line func([]string)) error {
	host, err := rootfs.Resolve(root, name, rootfs.Clamp)
	if err != nil {
		return fmt.Errorf("reading /%s: %w", name, err)
	}
	f, err := rootfs.OpenFile(host, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading /%s: %w", name, err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		t := strings.TrimSpace(s.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		line(strings.Split(t, ":"))
	}
	if err := s.Err(); err != nil {
		return fmt.Errorf("reading /%s: %w", name, err)
	}
	return nil
}

// LookupOwner resolves an owner spec for copied files — "user", "uid",
// "user:group", "uid:gid", any mix of names and numbers — against
// rootfs/etc/passwd and rootfs/etc/group, without running a container. It
// follows docker's COPY --chown: a user name takes its uid and primary gid
// from passwd; a numeric uid without a group has gid = uid; a group name is
// looked up in /etc/group. Numeric ids need no files. An unknown name is an
// error.
func LookupOwner(rootfs, spec string) (uid, gid int, err error) {
	userArg, groupArg, hasGroup := strings.Cut(spec, ":")
	if userArg == "" || hasGroup && groupArg == "" {
		return 0, 0, fmt.Errorf("%q: want user[:group]", spec)
	}
	if n, ok := parseID(userArg); ok {
		uid, gid = int(n), int(n)
	} else {
		passwd, err := readPasswd(rootfs)
		if err != nil {
			return 0, 0, err
		}
		i := slices.IndexFunc(passwd, func(e passwdEntry) bool { return e.name == userArg })
		if i < 0 {
			return 0, 0, fmt.Errorf("user %q is not in the image's /etc/passwd", userArg)
		}
		uid, gid = int(passwd[i].uid), int(passwd[i].gid)
	}
	if !hasGroup {
		return uid, gid, nil
	}
	if n, ok := parseID(groupArg); ok {
		return uid, int(n), nil
	}
	groups, err := readGroup(rootfs)
	if err != nil {
		return 0, 0, err
	}
	i := slices.IndexFunc(groups, func(g groupEntry) bool { return g.name == groupArg })
	if i < 0 {
		return 0, 0, fmt.Errorf("group %q is not in the image's /etc/group", groupArg)
	}
	return uid, int(groups[i].gid), nil
}
