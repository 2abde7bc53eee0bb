// Package owner names the process that owns a temp file, dir or
// container, so that a later build can tell whether it is gone: its pid,
// and its pid namespace. A build in another pid namespace (another
// container sharing the state dir) sees other processes under those pids:
// what it owns is judged gone from here only once its namespace has ended,
// and only from the initial namespace, which sees every process (Gone).
package owner

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
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

// initialNS is the inode of the initial pid namespace (the kernel's
// PROC_PID_INIT_INO): from there every process is in /proc.
const initialNS = "4026531836"

// Gone reports whether the process an owner id names has ended: a pid of
// this pid namespace (or of an id naming none, as strata made before it
// named them) that no process has, and not this process's own; or, seen
// from the initial pid namespace, a pid of a namespace no process is in
// any more (a container that ended: every process in it ended with it).
// An id that is not one is not gone, nor is another namespace's where
// this process cannot see whether it lives.
func Gone(id string) bool {
	p, ns, hasNS := strings.Cut(id, ".")
	pid, err := strconv.Atoi(p)
	if err != nil || pid <= 0 {
		return false
	}
	if hasNS && ns != pidNS() {
		return pidNS() == initialNS && !nsLives(ns)
	}
	return pid != os.Getpid() && !alive(pid)
}

// nsLives reports whether some process is in the pid namespace ns (or
// whether /proc cannot tell: then it is taken as living).
func nsLives(ns string) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return true
	}
	want := "pid:[" + ns + "]"
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if l, err := os.Readlink("/proc/" + e.Name() + "/ns/pid"); err == nil && l == want {
			return true
		}
	}
	return false
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

var bootIDRe = regexp.MustCompile(`^[0-9a-f-]{8,64}$`)

// BootID names the current boot of the machine: what is in a state dir
// outlives a reboot, what a process left there does not.
func BootID() (string, error) {
	data, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("reading the boot id: %w", err)
	}
	id := string(bytes.TrimSpace(data))
	if !bootIDRe.MatchString(id) {
		return "", fmt.Errorf("reading the boot id: unexpected %q", id)
	}
	return id, nil
}
