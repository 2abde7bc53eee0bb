package build

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/stratabuild/strata/build/sandbox"
	"github.com/stratabuild/strata/layers"
)

// reap cleans up after builds on this root that were killed before they
// could (SIGKILL, a crash): their containers are killed and deleted and
// their mounts detached. Names under mnt/ and runc/ carry the pid of the
// build that made them, so the live builds' are left alone.
func (b *builder) reap(ctx context.Context) {
	self := os.Getpid()
	stale := func(name string) bool {
		pid := ownerPID(name)
		return pid > 0 && pid != self && !processAlive(pid)
	}
	ids, err := sandbox.Reap(ctx, b.opts.Runtime, b.state, stale)
	if err != nil {
		b.log.Warn("removing containers of killed builds", "err", err)
	}
	for _, id := range ids {
		b.emit(Event{Kind: EventInfo, Text: "removed container " + id + " of a killed build"})
	}
	entries, _ := os.ReadDir(b.mnt)
	for _, e := range entries {
		if !stale(e.Name()) {
			continue
		}
		p := filepath.Join(b.mnt, e.Name())
		if err := layers.UnmountStale(p); err != nil {
			b.log.Warn("unmounting a killed build's rootfs", "path", p, "err", err)
			continue
		}
		if err := os.Remove(p); err != nil {
			b.log.Warn("removing a killed build's mount point", "path", p, "err", err)
			continue
		}
		b.emit(Event{Kind: EventInfo, Text: "unmounted " + p + " of a killed build"})
	}
}

// ownerPID is the pid in a name "KIND-PID-…", or 0.
func ownerPID(name string) int {
	parts := strings.SplitN(name, "-", 3)
	if len(parts) < 3 {
		return 0
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil {
		return 0
	}
	return pid
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// ownedName is a name for a temp dir or container that reap can tell
// apart: KIND-PID-RANDOM.
func ownedName(kind string) string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%s-%d-%s", kind, os.Getpid(), hex.EncodeToString(r[:]))
}
