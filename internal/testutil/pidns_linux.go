package testutil

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ForeignPIDNS starts a process in a pid namespace of its own (unshare),
// as a build in another container would run, and returns the namespace's
// inode as internal/owner names it; the process is killed when the test
// ends. It needs root and util-linux's unshare.
func ForeignPIDNS(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	Require(t, "unshare", func() error { _, err := exec.LookPath("unshare"); return err }, "apt-get install -y util-linux")
	cmd := exec.Command("unshare", "--pid", "--fork", "sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	own, _ := os.Readlink("/proc/self/ns/pid")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		kids, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/task/" + strconv.Itoa(cmd.Process.Pid) + "/children")
		for _, k := range strings.Fields(string(kids)) {
			l, err := os.Readlink("/proc/" + k + "/ns/pid")
			if err == nil && l != own {
				// The namespace's init outlives unshare: kill it too.
				if pid, err := strconv.Atoi(k); err == nil {
					t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
				}
				return strings.TrimSuffix(strings.TrimPrefix(l, "pid:["), "]")
			}
		}
	}
	t.Fatal("unshare's child is in no pid namespace of its own")
	return ""
}
