package userns

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
)

// The files that list each user's subordinate ids; variables so tests can
// point them elsewhere.
var (
	subUIDFile = "/etc/subuid"
	subGIDFile = "/etc/subgid"
)

// minSubIDs is the fewest subordinate ids SubIDFix gives: as many as
// useradd gives a new user, enough for the ids images commonly use.
const minSubIDs = 65536

// firstSubID is where useradd starts handing out subordinate ids
// (SUB_UID_MIN).
const firstSubID = 100000

// SubIDFix says how to give the user name at least n more subordinate
// uids and gids (minSubIDs at least): a usermod command adding a range that
// no user has, the one after the highest end of any range in /etc/subuid
// and /etc/subgid, so that no two users share ids (who would then read and
// write each other's rootless files).
func SubIDFix(name string, n uint64) string {
	n = max(n, minSubIDs)
	start := uint64(firstSubID)
	for _, file := range []string{subUIDFile, subGIDFile} {
		start = max(start, rangesEnd(file))
	}
	end := start + n - 1
	if end >= 1<<32-1 {
		return fmt.Sprintf("as root, add a range of %d ids no other user has to /etc/subuid and /etc/subgid for %s", n, name)
	}
	return fmt.Sprintf("as root, run: usermod --add-subuids %d-%d --add-subgids %d-%d %s", start, end, start, end, name)
}

// rangesEnd returns the id after the highest range that the
// /etc/subuid-style file lists for any user; 0 if it lists none.
func rangesEnd(file string) uint64 {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	var end uint64
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Split(strings.TrimSpace(line), ":")
		if len(fields) != 3 {
			continue
		}
		start, err1 := strconv.ParseUint(fields[1], 10, 32)
		count, err2 := strconv.ParseUint(fields[2], 10, 32)
		if err1 == nil && err2 == nil {
			end = max(end, start+count)
		}
	}
	return end
}

// subIDs returns the ranges /etc/subuid-style file lists for the user
// named name or numbered id, in file order. A missing file lists none.
func subIDs(file, name string, id uint32) ([]Range, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	defer f.Close()
	var out []Range
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, ":")
		if len(fields) != 3 {
			continue
		}
		owner := fields[0]
		if owner != name && owner != strconv.FormatUint(uint64(id), 10) {
			continue
		}
		start, err1 := strconv.ParseUint(fields[1], 10, 32)
		count, err2 := strconv.ParseUint(fields[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 {
			continue
		}
		out = append(out, Range{Outside: uint32(start), Count: uint32(count)})
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	return out, nil
}

// stack maps own as 0 and the subordinate ranges from 1 on, one after
// the other.
func stack(own uint32, sub []Range) IDMap {
	m := IDMap{{Inside: 0, Outside: own, Count: 1}}
	next := uint64(1)
	for _, r := range sub {
		if next+uint64(r.Count) > 1<<32-1 {
			break
		}
		m = append(m, Range{Inside: uint32(next), Outside: r.Outside, Count: r.Count})
		next += uint64(r.Count)
	}
	return m
}
