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
	// kept; only the container's state inside it is removed.
	StateDir string
	// ID is the container id; default a random hex id. It names the runtime
	// state and the cgroup /strata/<ID>.
	ID string
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

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return hex.EncodeToString(b)
}
