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

// SubIDFix is how to give a user subordinate ids, with NAME for the user.
const SubIDFix = "as root, run: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 NAME"

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
