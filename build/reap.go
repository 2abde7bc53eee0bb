package build

import (
	"context"
	"log/slog"
	"os"

	"github.com/stratabuild/strata/build/sandbox"
	"github.com/stratabuild/strata/internal/stateroot"
	"github.com/stratabuild/strata/layers"
)

// reap cleans up after builds on this root that were killed before they
// could (SIGKILL, a crash): their containers are killed and deleted, their
// mounts detached, their secret dirs removed. Names carry the pid of the
// build that made them (stateroot.OwnedName), so live builds' are left
// alone.
func reap(ctx context.Context, root *stateroot.Root, runtime string, emit func(Event), log *slog.Logger) {
	info := func(text string) { emit(Event{Kind: EventInfo, Text: text}) }
	ids, err := sandbox.Reap(ctx, runtime, root.Runtime(), stateroot.Stale)
	if err != nil {
		log.Warn("removing containers of killed builds", "err", err)
	}
	for _, id := range ids {
		info("removed container " + id + " of a killed build")
	}
	for _, p := range stateroot.StaleEntries(root.Mounts()) {
		if err := layers.UnmountStale(p); err != nil {
			log.Warn("unmounting a killed build's rootfs", "path", p, "err", err)
			continue
		}
		if err := os.Remove(p); err != nil {
			log.Warn("removing a killed build's mount point", "path", p, "err", err)
			continue
		}
		info("unmounted " + p + " of a killed build")
	}
	for _, p := range stateroot.StaleSecretDirs() {
		if err := os.RemoveAll(p); err != nil {
			log.Warn("removing a killed build's secret", "path", p, "err", err)
			continue
		}
		info("removed the secrets of a killed build (" + p + ")")
	}
}
