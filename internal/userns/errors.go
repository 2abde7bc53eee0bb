package userns

import (
	"fmt"
	"os/user"
	"strconv"
	"strings"
)

// PrereqError reports a prerequisite of rootless builds that is missing:
// what, and how to fix it. Nothing has run when it is returned.
type PrereqError struct {
	// Missing says what is missing, e.g. "newuidmap is not installed".
	Missing string
	// Fix says how to fix it.
	Fix string
	// Command names the command that cannot run, e.g. "prune"; "" is
	// "build".
	Command string
}

func (e *PrereqError) Error() string {
	cmd := e.Command
	if cmd == "" {
		cmd = "build"
	}
	return "cannot " + cmd + " rootless: " + e.Missing + " (" + e.Fix + ")"
}

// UnmappedError reports a file whose owner, or a step user whose ids, a
// rootless build cannot represent: the uid or gid lies outside the
// namespace's maps, so a file can neither be created with that owner nor
// committed with it, and a step cannot run as that user.
type UnmappedError struct {
	// Path names the file as the image sees it, e.g. "/etc/shadow".
	Path string
	// User, set instead of Path, names a step's user (uid[:gid] or name)
	// whose ids are UID and GID.
	User string
	// UID and GID are its owner, as the image sees it.
	UID, GID uint32
	// Maps are the namespace's maps.
	Maps Maps
}

func (e *UnmappedError) Error() string {
	name := userName(e.Maps.UIDs)
	// The maps hold the user's id as 0 and the subordinate ids from 1 on,
	// so id N needs N subordinate ids; a range added to /etc/subuid and
	// /etc/subgid extends them.
	more := max(idsShort(e.Maps.UIDs, e.UID), idsShort(e.Maps.GIDs, e.GID))
	fix := SubIDFix(name, more)
	var what string
	switch {
	case e.Maps.OwnIDOnly():
		what = fmt.Sprintf("it maps only your own ids (%s has no subordinate ids in /etc/subuid and /etc/subgid)", name)
	default:
		what = fmt.Sprintf("it maps uids %s and gids %s", spans(e.Maps.UIDs), spans(e.Maps.GIDs))
		top := max(e.UID, e.GID)
		fix = fmt.Sprintf("give %s %d more subordinate ids in /etc/subuid and /etc/subgid (id %d needs %d in all); %s",
			name, more, top, top, fix)
	}
	subject := e.Path + " is owned by"
	if e.User != "" {
		subject = fmt.Sprintf("the step's user %q is", e.User)
	}
	return fmt.Sprintf("%s %d:%d, which this rootless build cannot represent: %s (%s)",
		subject, e.UID, e.GID, what, fix)
}

// idsShort is how many more ids m needs to map id: none if it does.
func idsShort(m IDMap, id uint32) uint64 {
	if m.Contains(id) || uint64(id) < m.Size() {
		return 0
	}
	return uint64(id) + 1 - m.Size()
}

// CheckOwner returns an *UnmappedError for path if uid or gid is not
// mapped by maps.
func CheckOwner(maps Maps, path string, uid, gid uint32) error {
	if maps.UIDs.Contains(uid) && maps.GIDs.Contains(gid) {
		return nil
	}
	return &UnmappedError{Path: path, UID: uid, GID: gid, Maps: maps}
}

// userName is the name of the host user that is 0 in uids, or its
// number when it has none.
func userName(uids IDMap) string {
	id, ok := uids.Outside(0)
	if !ok {
		return "your user"
	}
	s := strconv.FormatUint(uint64(id), 10)
	if u, err := user.LookupId(s); err == nil {
		return u.Username
	}
	return s
}

// spans writes the inside ids of m as "0-65536" ranges.
func spans(m IDMap) string {
	parts := make([]string, len(m))
	for i, r := range m {
		if r.Count == 1 {
			parts[i] = strconv.FormatUint(uint64(r.Inside), 10)
			continue
		}
		parts[i] = fmt.Sprintf("%d-%d", r.Inside, uint64(r.Inside)+uint64(r.Count)-1)
	}
	return strings.Join(parts, ",")
}
