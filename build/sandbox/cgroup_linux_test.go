package sandbox

import (
	"bufio"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stratabuild/strata/internal/testutil"
)

// TestCgroupParentKeptForOtherProcesses: while another process holds the
// parent lock shared, as another build's Run does while its runtime makes
// the parent cgroup and the container's under it, removeCgroupParent
// leaves the empty parent in place.
func TestCgroupParentKeptForOtherProcesses(t *testing.T) {
	testutil.RequireRoot(t)
	mounts := cgroupMounts()
	if len(mounts) == 0 {
		t.Fatal("no cgroup hierarchy found in /proc/self/mountinfo")
	}
	other := exec.Command("flock", "--shared", parentLock, "sh", "-c", "echo locked; exec sleep 60")
	out, err := other.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Process.Kill(); _ = other.Wait() }()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("the other process did not take the lock: %q, %v", line, err)
	}
	// The parent as another runtime has just made it, empty.
	for _, m := range mounts {
		if err := os.Mkdir(filepath.Join(m, cgroupParent), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			t.Fatal(err)
		}
	}
	removeCgroupParent()
	for _, m := range mounts {
		if _, err := os.Stat(filepath.Join(m, cgroupParent)); err != nil {
			t.Errorf("the parent cgroup in %s was removed under another process's run: %v", m, err)
		}
	}
}
