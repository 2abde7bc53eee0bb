package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strconv"
	"strings"
)

// Network modes accepted in Options.Network.
const (
	// NetworkNone gives the process a fresh network namespace with only the
	// loopback interface, up. It is the default.
	NetworkNone = "none"
	// NetworkHost shares the host's network namespace.
	NetworkHost = "host"
)

// DefaultPath is the PATH set when Options.Env has none, as docker does.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Resource limits of a container (its cgroup /strata/<id>).
const (
	// DefaultPidsLimit is the number of processes and threads a container
	// may hold at once when Options.PidsLimit is 0. It is far above what a
	// build needs (make -j64, a JVM with hundreds of threads) and far below
	// the host's pid space (32768 on many kernels), so a fork bomb in a step
	// fails with EAGAIN inside the step instead of starving the host.
	// docker leaves pids unlimited; a builder running untrusted recipes
	// should not.
	DefaultPidsLimit int64 = 4096
	// DefaultMemoryLimit is the memory limit when Options.MemoryLimit is 0:
	// none (-1), as in docker. What a build needs cannot be guessed (a
	// linker can need gigabytes), and without a limit the kernel still
	// protects the host with its own OOM killer. Set one per step when a
	// build must not take more than its share.
	DefaultMemoryLimit int64 = -1
	// MinMemoryLimit is the smallest memory limit accepted: below it the
	// runtime itself cannot start the container (docker's minimum too).
	MinMemoryLimit int64 = 6 << 20
)

// bundleSuffix ends the name of a container's bundle dir, kept in the
// runtime state dir beside the runtime's own dir for the container.
const bundleSuffix = ".bundle"

// Options describes one process to run in a rootfs.
type Options struct {
	// Rootfs is the container's root directory, typically a merged overlay
	// dir. It must exist and be writable.
	Rootfs string
	// Args is argv. Shell form is the caller's business: pass
	// []string{"/bin/sh", "-c", cmd}. Args[0] is looked up in the PATH of Env
	// inside the rootfs.
	Args []string
	// Env is the process environment as KEY=VALUE. PATH defaults to
	// DefaultPath and HOME to the user's home directory (or /) when absent.
	Env []string
	// Cwd is the absolute working directory; default "/". It is created in
	// the rootfs (root-owned, 0755, with its parents) when missing, as docker
	// does for WORKDIR, and that creation is a change the caller keeps.
	Cwd string
	// User is "", "name", "uid", "uid:gid", "name:group" (any mix of names
	// and numbers). Names are looked up in Rootfs/etc/passwd and
	// Rootfs/etc/group, never the host's. "" is root.
	User string
	// Network is NetworkNone (default) or NetworkHost.
	Network string
	// Hostname is the container's hostname; default the first 12
	// characters of the container id.
	Hostname string
	// Mounts are extra mounts (caches, secrets, tmpfs), applied in order
	// after the standard ones.
	Mounts []Mount
	// Stdout and Stderr receive the process output as it is written. nil
	// discards. Two different writers are written from two goroutines; pass
	// the same (comparable) writer for both to get one interleaved stream
	// written by one goroutine. Stdin is always /dev/null; there is no
	// terminal.
	Stdout, Stderr io.Writer
	// Runtime is the OCI runtime binary (a name looked up in PATH, or a
	// path); default "runc". It must take runc's command line (run, kill,
	// delete, --root, --log); crun does. Only runc is tested.
	Runtime string
	// StateDir is the runtime's state root (runc --root). Default: a fresh
	// directory under os.TempDir, removed after the run. A given StateDir is
	// kept (and created if missing); only the container's state inside it
	// is removed. The container's bundle (runtime config, init files) is
	// StateDir/<ID>.bundle, so that Reap finds it if this process is killed
	// before it can remove it.
	StateDir string
	// ID is the container id; default a random hex id. It names the runtime
	// state, the bundle and the cgroup /strata/<ID>. Letters, digits, "_",
	// "+", "-" and "." only, and it may not end in ".bundle".
	ID string
	// PidsLimit caps the processes and threads the container holds at once
	// (the pids cgroup): past it fork and clone fail with EAGAIN inside the
	// container. 0 means DefaultPidsLimit; negative means unlimited. A
	// rootless run has no cgroup: it refuses a positive limit and does not
	// apply the default.
	PidsLimit int64
	// MemoryLimit caps the container's memory in bytes (the memory cgroup;
	// swap included where the kernel accounts it, so a step cannot swap
	// past it): a step that needs more is killed by the kernel's OOM
	// killer, and Run returns an *ExitError with status 137. 0 means
	// DefaultMemoryLimit (unlimited); negative means unlimited; a positive
	// value must be at least MinMemoryLimit. A rootless run refuses a
	// positive limit.
	MemoryLimit int64
	// Log receives debug records (spec, timings). nil discards.
	Log *slog.Logger
}

// Mount is one extra mount in the container.
type Mount struct {
	// Type is "bind" or "tmpfs".
	Type string
	// Source is the host path for "bind"; ignored for "tmpfs".
	Source string
	// Target is the absolute path inside the container. Missing targets
	// (and their missing parents) are created by the runtime and removed
	// after the run when still empty.
	Target string
	// ReadOnly mounts read-only.
	ReadOnly bool
	// Options are extra mount options, e.g. "size=64m" or "mode=0700".
	Options []string
}

// ExitError reports that the process ran and exited non-zero. Status is the
// exit code, or 128+signal when the process was killed by a signal.
type ExitError struct {
	Status int
}

func (e *ExitError) Error() string {
	return "process exited with status " + strconv.Itoa(e.Status)
}

// withDefaults validates o and fills in its defaults.
func (o Options) withDefaults() (Options, error) {
	var errs []error
	if o.Rootfs == "" {
		errs = append(errs, errors.New("rootfs is empty"))
	}
	if len(o.Args) == 0 || o.Args[0] == "" {
		errs = append(errs, errors.New("no command: args is empty"))
	}
	if o.Cwd == "" {
		o.Cwd = "/"
	}
	if !path.IsAbs(o.Cwd) {
		errs = append(errs, fmt.Errorf("working directory %q is not absolute", o.Cwd))
	}
	o.Cwd = path.Clean(o.Cwd)
	switch o.Network {
	case "":
		o.Network = NetworkNone
	case NetworkNone, NetworkHost:
	default:
		errs = append(errs, fmt.Errorf("network %q: want %q or %q", o.Network, NetworkNone, NetworkHost))
	}
	for _, m := range o.Mounts {
		if !path.IsAbs(m.Target) {
			errs = append(errs, fmt.Errorf("mount target %q is not absolute", m.Target))
		}
		switch m.Type {
		case "bind":
			if m.Source == "" {
				errs = append(errs, fmt.Errorf("bind mount on %s has no source", m.Target))
			}
		case "tmpfs":
		default:
			errs = append(errs, fmt.Errorf("mount on %s: type %q: want \"bind\" or \"tmpfs\"", m.Target, m.Type))
		}
	}
	if o.ID == "" {
		o.ID = newID()
	}
	if err := validID(o.ID); err != nil {
		errs = append(errs, err)
	}
	if o.PidsLimit == 0 {
		o.PidsLimit = DefaultPidsLimit
	}
	if o.MemoryLimit == 0 {
		o.MemoryLimit = DefaultMemoryLimit
	}
	if o.MemoryLimit > 0 && o.MemoryLimit < MinMemoryLimit {
		errs = append(errs, fmt.Errorf("memory limit %d bytes is below the minimum of %d (6 MiB)", o.MemoryLimit, MinMemoryLimit))
	}
	if o.Hostname == "" {
		o.Hostname = o.ID[:min(12, len(o.ID))]
	}
	if o.Runtime == "" {
		o.Runtime = "runc"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o, errors.Join(errs...)
}

// validID refuses a container id the runtime would refuse, one that is not
// a single path element, and one that names a bundle dir.
func validID(id string) error {
	if id == "." || id == ".." || strings.HasSuffix(id, bundleSuffix) {
		return fmt.Errorf("container id %q is reserved", id)
	}
	for _, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_+-.", c)
		if !ok {
			return fmt.Errorf("container id %q: only letters, digits and _+-. are allowed", id)
		}
	}
	return nil
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return hex.EncodeToString(b)
}
