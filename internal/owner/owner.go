// Package owner names the process that owns a temp file, dir or
// container, so that a later build can tell whether it is gone: its pid,
// and its pid namespace. A build in another pid namespace (another
// container sharing the state dir) sees other processes under those pids:
// what it owns is never judged gone from here.
package owner

import (
	"os"
	"strconv"
	"strings"
	"sync"
)

// ID is this process's owner id: "PID.NS", NS the inode of its pid
// namespace, or "PID" where that cannot be read.
func ID() string {
	id := strconv.Itoa(os.Getpid())
	if ns := pidNS(); ns != "" {
		id += "." + ns
	}
	return id
}

// Gone reports whether the process an owner id names has ended: a pid of
// this pid namespace (or of an id naming none, as strata made before it
// named them) that no process has, and not this process's own. An id that
// is not one, or is another namespace's, is not gone.
func Gone(id string) bool {
	p, ns, hasNS := strings.Cut(id, ".")
	pid, err := strconv.Atoi(p)
	if err != nil || pid <= 0 || pid == os.Getpid() || hasNS && ns != pidNS() {
		return false
	}
	return !alive(pid)
}

var nsOnce = sync.OnceValue(func() string {
	l, err := os.Readlink("/proc/self/ns/pid") // "pid:[4026531836]"
	if err != nil {
		return ""
	}
	ino, ok := strings.CutPrefix(l, "pid:[")
	ino, ok2 := strings.CutSuffix(ino, "]")
	if !ok || !ok2 {
		return ""
	}
	if _, err := strconv.ParseUint(ino, 10, 64); err != nil {
		return ""
	}
	return ino
})

func pidNS() string { return nsOnce() }
