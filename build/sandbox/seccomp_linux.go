package sandbox

import (
	"fmt"
	"slices"
	"sync"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultSeccomp is docker's default seccomp profile for a process with
// docker's default capabilities, made once: it depends only on the
// capabilities (fixed) and the host's architecture and kernel.
//
// The profile allows about 400 syscalls and refuses the rest with EPERM
// (clone3 with ENOSYS, so C libraries fall back to clone, whose flags the
// filter can see). Without CAP_SYS_ADMIN it refuses unshare, setns, mount
// and clone with namespace flags, so a step cannot make a user namespace,
// as docker refuses it. Its fields are those runc 1.1 reads from a 1.0.2
// spec: defaultAction, defaultErrnoRet, architectures and per-syscall
// action, errnoRet and args; no flags, no listener. Syscalls the host's
// libseccomp does not know are skipped by runc.
var defaultSeccomp = sync.OnceValues(func() (*specs.LinuxSeccomp, error) {
	caps := slices.Clone(defaultCaps)
	s := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{
		Bounding: caps, Effective: caps, Permitted: caps,
	}}}
	p, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		return nil, fmt.Errorf("making the seccomp profile: %w", err)
	}
	return p, nil
})
