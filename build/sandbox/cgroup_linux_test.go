package sandbox

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCgroupParentStays: after a run, the container's cgroup is gone but
// the parent the runtime made stays in every hierarchy, even with no
// other run active: a build that removed it could do so just after
// another build's runtime made it, and before it made the container's
// cgroup under it (which then failed: "mkdir
// /sys/fs/cgroup/blkio/strata/strata-…: no such file or directory").
func TestCgroupParentStays(t *testing.T) {
	requireRunc(t)
	state := t.TempDir()
	r := run(t.Context(), t, Options{Rootfs: busybox(t), StateDir: state, ID: "strata-parent-test", Args: []string{"true"}})
	if r.err != nil {
		t.Fatalf("Run: %v", r.err)
	}
	assertNoTraces(t, "strata-parent-test", state)
	for _, m := range cgroupMounts() {
		if _, err := os.Stat(filepath.Join(m, cgroupParent)); err != nil {
			t.Errorf("the parent cgroup in %s is gone: %v", m, err)
		}
	}
}
