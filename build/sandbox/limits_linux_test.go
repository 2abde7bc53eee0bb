package sandbox

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestStepRunsUnderSeccomp: a step sees "Seccomp: 2" (a filter) in
// /proc/self/status, docker's default profile.
func TestStepRunsUnderSeccomp(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	r := run(t.Context(), t, Options{Rootfs: busybox(t), Args: []string{"grep", "^Seccomp:", "/proc/self/status"}})
	if r.err != nil {
		t.Fatalf("Run: %v\n%s", r.err, r.stderr)
	}
	if diff := cmp.Diff("Seccomp:\t2\n", r.stdout); diff != "" {
		t.Errorf("seccomp mode in a step (-want +got):\n%s", diff)
	}
}

// TestStepCannotUnshareUserNamespace: user namespaces are refused inside a
// step as docker refuses them, so the escape to a mount of one's
// own fails; the syscalls are refused with EPERM.
func TestStepCannotUnshareUserNamespace(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	for _, script := range []string{
		"unshare -U true",
		"unshare -U -r -m sh -c 'mkdir -p /m && mount -t tmpfs none /m && echo mounted'",
		"unshare -m true",
	} {
		t.Run(script, func(t *testing.T) {
			t.Parallel()
			r := run(t.Context(), t, Options{Rootfs: busybox(t), Args: []string{"sh", "-c", script}})
			var exit *ExitError
			if !errors.As(r.err, &exit) {
				t.Fatalf("Run(%q) = %v, want an exit error (refused)\nstdout: %s\nstderr: %s", script, r.err, r.stdout, r.stderr)
			}
			if strings.Contains(r.stdout, "mounted") {
				t.Errorf("Run(%q) mounted a tmpfs in a user namespace", script)
			}
			if !strings.Contains(r.stderr, "Operation not permitted") {
				t.Errorf("Run(%q) stderr = %q, want EPERM (Operation not permitted)", script, r.stderr)
			}
		})
	}
}

// TestStepDefaultLimits: without options a step's cgroup has the default
// pids limit and no memory limit.
func TestStepDefaultLimits(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	script := "cat /sys/fs/cgroup/pids/pids.max; cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
	r := run(t.Context(), t, Options{Rootfs: busybox(t), Args: []string{"sh", "-c", script}})
	if r.err != nil {
		t.Fatalf("Run: %v\n%s", r.err, r.stderr)
	}
	lines := strings.Fields(r.stdout)
	if len(lines) != 2 {
		t.Fatalf("limits = %q, want pids.max and memory.limit_in_bytes", r.stdout)
	}
	if lines[0] != strconv.FormatInt(DefaultPidsLimit, 10) {
		t.Errorf("pids.max = %s, want %d", lines[0], DefaultPidsLimit)
	}
	if mem, err := strconv.ParseInt(lines[1], 10, 64); err != nil || mem < 1<<60 {
		t.Errorf("memory.limit_in_bytes = %s, want unlimited", lines[1])
	}
}

// TestForkBombStoppedByPidsLimit: a step that forks without end fails once
// it holds PidsLimit processes, within seconds, and leaves nothing running
// (its cgroup is gone).
func TestForkBombStoppedByPidsLimit(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	stateDir := t.TempDir()
	o := Options{
		Rootfs: busybox(t), StateDir: stateDir, ID: "strata-pids-test-" + newID()[:8], PidsLimit: 64,
		// 500 sleepers if nothing stops it; the pid namespace ends them
		// all with the shell either way.
		Args: []string{"sh", "-c", "cat /sys/fs/cgroup/pids/pids.max; i=0; while [ $i -lt 500 ]; do sleep 600 & i=$((i+1)); done; echo spawned $i"},
	}
	start := time.Now()
	r := run(t.Context(), t, o)
	var exit *ExitError
	if !errors.As(r.err, &exit) {
		t.Fatalf("Run(fork loop, PidsLimit 64) = %v, want an exit error\nstdout: %s", r.err, r.stdout)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the fork loop ran %v, want it stopped at once", d)
	}
	if !strings.HasPrefix(r.stdout, "64\n") || strings.Contains(r.stdout, "spawned") {
		t.Errorf("stdout = %q, want pids.max 64 and the loop stopped before the end", r.stdout)
	}
	if !strings.Contains(r.stderr, "fork") {
		t.Errorf("stderr = %q, want the shell's fork failure", r.stderr)
	}
	assertNoTraces(t, o.ID, stateDir)
}

// TestMemoryLimitKillsStep: a step that holds more memory than MemoryLimit
// is killed (status 137); the same step runs under a limit that fits it.
func TestMemoryLimitKillsStep(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	// 64 MiB in a shell variable.
	script := `cat /sys/fs/cgroup/memory/memory.limit_in_bytes; x=$(head -c 67108864 /dev/zero | tr '\0' x); echo held ${#x}`
	for _, tc := range []struct {
		limit int64
		want  string // stdout
		exit  int
	}{
		{32 << 20, "33554432\n", 137},
		{256 << 20, "268435456\nheld 67108864\n", 0},
	} {
		t.Run(strconv.FormatInt(tc.limit>>20, 10)+"MiB", func(t *testing.T) {
			t.Parallel()
			r := run(t.Context(), t, Options{Rootfs: busybox(t), MemoryLimit: tc.limit, Args: []string{"sh", "-c", script}})
			var exit *ExitError
			switch {
			case tc.exit == 0 && r.err != nil:
				t.Errorf("Run(64 MiB under %d MiB) = %v, want success\n%s", tc.limit>>20, r.err, r.stderr)
			case tc.exit != 0 && (!errors.As(r.err, &exit) || exit.Status != tc.exit):
				t.Errorf("Run(64 MiB under %d MiB) = %v, want exit status %d", tc.limit>>20, r.err, tc.exit)
			}
			if diff := cmp.Diff(tc.want, r.stdout); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
		})
	}
}
