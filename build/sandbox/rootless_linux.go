package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/userns"
)

// Rootless runs: when this process is in a user namespace (a rootless
// build, see internal/userns), the runtime runs there as its uid 0, with
// the capabilities of that namespace only. The container gets no user
// namespace of its own: it shares the build's, so the ids it writes are
// the ones the build commits. What changes:
//   - cgroups: none. No hierarchy of cgroup v1 is a user's to write, so
//     there is no /strata/<id> cgroup, and no pids or memory limit: an
//     explicit limit is an error (checkRootlessLimits), the default pids
//     limit is not applied (a fork bomb in a step is bounded by the user's
//     RLIMIT_NPROC instead).
//   - /sys: a read-only bind of the host's with network host, as sysfs
//     can only be mounted by the owner of the network namespace.
//   - /dev/pts: without gid=5 when gid 5 is not mapped.
//   - the step's user and groups must be mapped (*userns.UnmappedError).
//   - device nodes in /dev are bind mounts of the host's, which the
//     runtime does by itself in a user namespace.
// Network none and host, docker's capabilities, seccomp profile and
// masked and read-only paths are as in a rootful run.

// errRootlessLimit is wrapped by the error of an explicit limit in a
// rootless run.
var errRootlessLimit = errors.New("a rootless build runs its steps without cgroups, so it cannot apply a limit")

// checkRootlessLimits refuses the limits a rootless run cannot apply: an
// explicit pids or memory limit (o before defaults).
func checkRootlessLimits(o Options) error {
	var errs []error
	if o.PidsLimit > 0 {
		errs = append(errs, fmt.Errorf("pids limit %d: %w (drop it, or build as root)", o.PidsLimit, errRootlessLimit))
	}
	if o.MemoryLimit > 0 {
		errs = append(errs, fmt.Errorf("memory limit %d bytes: %w (drop it, or build as root)", o.MemoryLimit, errRootlessLimit))
	}
	return errors.Join(errs...)
}

// makeRootless adapts the spec of a run (defaults applied) as user u to
// the user namespace this process runs in.
func makeRootless(s *specs.Spec, o Options, u execUser) error {
	maps, err := userns.CurrentMaps()
	if err != nil {
		return err
	}
	for _, g := range append([]uint32{u.GID}, u.Groups...) {
		if !maps.UIDs.Contains(u.UID) || !maps.GIDs.Contains(g) {
			user := o.User
			if user == "" {
				user = "root"
			}
			return &userns.UnmappedError{User: user, UID: u.UID, GID: g, Maps: maps}
		}
	}
	s.Linux.CgroupsPath = ""
	s.Linux.Resources = nil
	for i, m := range s.Mounts {
		switch {
		case m.Destination == "/sys" && o.Network == NetworkHost:
			s.Mounts[i] = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys",
				Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro"}}
		case m.Type == "devpts" && !maps.GIDs.Contains(5):
			s.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(opt string) bool {
				return strings.HasPrefix(opt, "gid=")
			})
		}
	}
	return nil
}

// KillStale sends SIGKILL to the containers in the runtime state dir for
// which stale reports true, and returns their ids; it deletes nothing
// (Reap, in the next build, does). A rootless build calls it before it
// enters its user namespace: a killed rootless build's step processes live
// in that build's namespace, which only the user outside may signal when
// they run as other ids than the user's own.
func KillStale(ctx context.Context, runtime, stateDir string, stale func(id string) bool) []string {
	entries, err := os.ReadDir(stateDir)
	if err != nil {
		return nil
	}
	if runtime == "" {
		runtime = "runc"
	}
	r := &runc.Runc{Command: runtime, Root: stateDir}
	var killed []string
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), bundleSuffix) || !stale(e.Name()) {
			continue
		}
		if r.Kill(ctx, e.Name(), int(unix.SIGKILL), nil) == nil {
			killed = append(killed, e.Name())
		}
	}
	return killed
}
