// Package sandbox runs one process in a root filesystem with an OCI runtime
// (runc by default), the way a build step runs.
//
// Input: an Options — a rootfs directory (normally a merged overlay mount),
// argv, environment, user, working directory, network mode ("none" or
// "host"), hostname and extra bind/tmpfs mounts. Output: the process's
// stdout and stderr, streamed to the given writers, and its exit status (an
// *ExitError when non-zero). Side effects on the rootfs are only what the
// process wrote plus a created working directory: the init files
// (/etc/hosts, /etc/resolv.conf) are bind-mounted read-only from outside the
// rootfs, as BuildKit does, and the mount stubs the runtime creates are
// removed afterwards. /etc/hostname is the rootfs's own (the hostname is
// the UTS namespace's). Nothing else is left behind: no runtime state,
// cgroup, temp dir or mount.
//
// The container gets pid, mount, uts and ipc namespaces (and a fresh network
// namespace with only loopback, up, for network "none"), docker's default
// capabilities, docker's default seccomp profile (from
// github.com/moby/profiles/seccomp: no user namespaces, no mount, no
// kernel keyring or module calls), docker's masked and read-only /proc
// paths, and a read-only /sys. no_new_privileges is off, as in docker's
// RUN: a setuid program (sudo, su) or one with file capabilities (ping)
// gains them for a step's non-root user. Its cgroup is /strata/<id>,
// removed with the container, with a pids limit (DefaultPidsLimit unless
// set) and an optional memory limit.
//
// Rootless: when this process runs in a user namespace (a build by a user
// without root, see internal/userns), the runtime runs there as its uid 0
// and the container shares that namespace (no user namespace of its own),
// so the ids a step writes are the ids the image sees. There is no cgroup:
// an explicit pids or memory limit is refused, the default pids limit is
// not applied. /sys is the host's, bound read-only, with network host. A
// step user the namespace cannot map is a *userns.UnmappedError. Network
// none and host, capabilities, seccomp and masked paths are as rootful.
//
// With a StateDir the runtime bundle is StateDir/<id>.bundle, beside the
// runtime's state, and names the runtime process once it runs: Reap, which
// the next build calls with a predicate naming the ids of dead owners,
// stops that process and the container's (also one still being set up,
// which the runtime has no state for yet), then removes the container's
// state, cgroup and bundle.
//
// The runtime is any OCI runtime binary that accepts runc's command line
// (runc, crun); only runc 1.1 (Debian 12) is tested. crun 1.8 rejects hybrid
// cgroup v1 hosts.
//
// LookupOwner resolves a copy step's owner from the rootfs's passwd and
// group files without running anything.
package sandbox
