package tidy

import (
	"context"
	"log/slog"

	"github.com/stratabuild/strata/build/sandbox"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/stateroot"
	"github.com/stratabuild/strata/layers"
)

// Reap cleans up after builds on this root that were killed before they
// could (SIGKILL, a crash): their containers are killed and deleted, their
// mounts detached, their secret dirs removed, the blobs they were fetching
// or compressing (temps, never named as blobs) removed; info is told of
// each. Names carry the pid of the build that made them
// (stateroot.OwnedName), so live builds' are left alone. runtime is the
// OCI runtime binary the containers ran with ("" for runc).
func Reap(ctx context.Context, root *stateroot.Root, runtime string, info func(string), log *slog.Logger) {
	ids, err := sandbox.Reap(ctx, runtime, root.Runtime(), stateroot.Stale)
	if err != nil {
		log.Warn("removing containers of killed builds", "err", err)
	}
	for _, id := range ids {
		info("removed container " + id + " of a killed build")
	}
	root.ReapStale(layers.UnmountStale,
		func(p string) { info("removed " + p + ", left by a killed build") },
		func(p string, err error) { log.Warn("removing what a killed build left", "path", p, "err", err) })
	if err := commit.CleanBlobTemps(root.Blobs()); err != nil {
		log.Warn("removing the blobs killed builds were writing", "err", err)
	}
}
