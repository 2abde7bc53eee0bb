package sandbox

import (
	"os"
	"path/filepath"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// limitResources sets o's pids and memory limits (defaults applied) on r,
// the container's cgroup resources. A negative limit sets nothing.
func limitResources(r *specs.LinuxResources, o Options) {
	if o.PidsLimit > 0 {
		r.Pids = &specs.LinuxPids{Limit: ptr(o.PidsLimit)}
	}
	if o.MemoryLimit > 0 {
		r.Memory = &specs.LinuxMemory{Limit: ptr(o.MemoryLimit)}
		if swapAccounted() {
			// memory+swap = memory: no swap beyond the limit.
			r.Memory.Swap = ptr(o.MemoryLimit)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// swapAccounted reports whether the runtime can limit memory+swap: with
// cgroup v2 (the runtime then disables swap, or ignores it when the
// kernel does not account it), or with a cgroup v1 memory hierarchy that
// has memory.memsw.limit_in_bytes (swapaccount=1); writing that file
// where it is missing would fail the container's start.
var swapAccounted = sync.OnceValue(func() bool {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return true // unified hierarchy
	}
	for _, m := range cgroupMounts() {
		if _, err := os.Stat(filepath.Join(m, "memory.memsw.limit_in_bytes")); err == nil {
			return true
		}
	}
	return false
})
