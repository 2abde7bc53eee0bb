package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stratabuild/strata/internal/owner"
)

// helperEnv makes the test binary run one container with the Options
// (JSON) it holds instead of the tests: a process to SIGKILL mid-step.
const helperEnv = "STRATA_SANDBOX_TEST_RUN"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		var o Options
		if err := json.Unmarshal([]byte(spec), &o); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		o.Stdout, o.Stderr = os.Stdout, os.Stderr
		if err := Run(context.Background(), o); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// killDuringStep runs a container from another process and SIGKILLs that
// process once the step runs, as `kill -KILL` of strata does: nothing
// cleans up. TMPDIR points at tmp for that process.
func killDuringStep(t *testing.T, o Options, tmp string) {
	t.Helper()
	killOnceReady(t, o, tmp, func(out io.Reader) error {
		line, err := bufio.NewReader(out).ReadString('\n')
		switch {
		case line == "started\n":
			return nil
		case err != nil:
			return fmt.Errorf("the step did not start: %q: %w", line, err)
		}
		return fmt.Errorf("the step did not start: it printed %q", line)
	})
}

// killOnceReady runs a container from another process, as killDuringStep
// does, and SIGKILLs that process once ready, given its stdout, returns;
// an error from ready fails the test.
func killOnceReady(t *testing.T, o Options, tmp string, ready func(stdout io.Reader) error) {
	t.Helper()
	spec, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+string(spec), "TMPDIR="+tmp)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := ready(out); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal(err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

// hookedRuntime writes a runtime for Options.Runtime: runc, with a
// createRuntime hook added to each container's config that creates marker
// and then sleeps for nap. The runtime (`runc run`) runs the hook while
// the container's init waits in its cgroup, its rootfs mounted but not yet
// its root: a build killed then leaves both working on.
func hookedRuntime(t *testing.T, marker string, nap time.Duration) string {
	t.Helper()
	hook := fmt.Sprintf(`"hooks": {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "touch %s; sleep %g"], "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]}]},`, marker, nap.Seconds())
	script := `#!/bin/sh
prev=
for a; do [ "$prev" = --bundle ] && sed -i '1a ` + hook + `' "$a/config.json"; prev=$a; done
exec runc "$@"
`
	path := filepath.Join(t.TempDir(), "hooked-runc")
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReapStopsARuntimeStillSettingUp: a build killed while its runtime
// sets the container up (a createRuntime hook runs; the init waits in the
// container's cgroup, no runtime state written yet) leaves `runc run` and
// the init running. Reap stops both before it returns, so that neither
// goes on to make, after the bundle and the rootfs's mount point are
// removed, what no later build removes; and it removes the cgroup.
func TestReapStopsARuntimeStillSettingUp(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	stateDir, tmp := t.TempDir(), t.TempDir()
	marker := filepath.Join(t.TempDir(), "hook-ran")
	const nap = 3 * time.Second
	id := "strata-setup-test-" + newID()[:8]
	o := Options{Rootfs: busybox(t), StateDir: stateDir, ID: id, Runtime: hookedRuntime(t, marker, nap), Args: []string{"echo", "started"}}
	killOnceReady(t, o, tmp, func(io.Reader) error {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if _, err := os.Stat(marker); err == nil {
				return nil
			}
		}
		return errors.New("the runtime's hook did not run")
	})
	hooked := time.Now()

	rec, err := os.ReadFile(filepath.Join(stateDir, id+bundleSuffix, runtimeRecord))
	if err != nil {
		t.Fatalf("the bundle names no runtime process: %v", err)
	}
	var pid int
	if _, err := fmt.Sscan(string(rec), &pid); err != nil {
		t.Fatal(err)
	}
	alive := func() bool { _, zombie, err := owner.ProcStat(pid); return err == nil && !zombie }
	var inits []string
	for _, m := range cgroupMounts() {
		b, _ := os.ReadFile(filepath.Join(m, cgroupParent, id, "cgroup.procs"))
		inits = append(inits, strings.Fields(string(b))...)
	}
	if !alive() || len(inits) == 0 {
		t.Fatalf("after SIGKILL the runtime (pid %d) runs: %v; the container's cgroups hold %v; want both: the test proves nothing", pid, alive(), inits)
	}

	reaped, err := Reap(t.Context(), o.Runtime, stateDir, func(s string) bool { return s == id })
	if err != nil {
		t.Fatalf("Reap: %v", err)
	}
	if diff := cmp.Diff([]string{id}, reaped); diff != "" {
		t.Errorf("Reap ids (-want +got):\n%s", diff)
	}
	if alive() {
		t.Errorf("the runtime (pid %d) still runs after Reap", pid)
	}
	assertNoTraces(t, id, stateDir)
	// Past the hook's nap, a runtime left running would make its state again.
	time.Sleep(time.Until(hooked.Add(nap + time.Second)))
	assertNoTraces(t, id, stateDir)
}

// TestReapRemovesKilledRunsContainerAndBundle: after SIGKILL of the
// process running a step, its container keeps running and its bundle stays
// in the state dir (none in TMPDIR); Reap stops the container and removes
// its state, cgroup and bundle.
func TestReapRemovesKilledRunsContainerAndBundle(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	stateDir, tmp := t.TempDir(), t.TempDir()
	id := "strata-reap-test-" + newID()[:8]
	o := Options{Rootfs: busybox(t), StateDir: stateDir, ID: id, Args: []string{"sh", "-c", "echo started; exec sleep 600"}}
	killDuringStep(t, o, tmp)
	if got := names(t, stateDir); !cmp.Equal(got, []string{id, id + bundleSuffix}) {
		t.Fatalf("state dir after SIGKILL = %v, want the container and its bundle; the test proves nothing", got)
	}
	if got := names(t, tmp); len(got) != 0 {
		t.Errorf("TMPDIR after SIGKILL = %v, want nothing there", got)
	}
	other := "strata-other-" + newID()[:8]
	if err := os.Mkdir(filepath.Join(stateDir, other+bundleSuffix), 0o700); err != nil {
		t.Fatal(err)
	}
	reaped, err := Reap(t.Context(), "", stateDir, func(s string) bool { return s == id })
	if err != nil {
		t.Fatalf("Reap: %v", err)
	}
	if diff := cmp.Diff([]string{id}, reaped); diff != "" {
		t.Errorf("Reap ids (-want +got):\n%s", diff)
	}
	if got := names(t, stateDir); !cmp.Equal(got, []string{other + bundleSuffix}) {
		t.Errorf("state dir after Reap = %v, want only the live run's bundle", got)
	}
	if err := os.Remove(filepath.Join(stateDir, other+bundleSuffix)); err != nil {
		t.Fatal(err)
	}
	assertNoTraces(t, id, stateDir)
}

// TestReapRemovesStaleBundleWithoutContainer: a bundle whose container was
// never made (killed before the runtime started it) or already deleted is
// removed when its id is stale, and kept when not; a runtime record left
// empty (a build killed as it wrote it) names no process.
func TestReapRemovesStaleBundleWithoutContainer(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	stateDir := t.TempDir()
	for _, name := range []string{"strata-1-dead" + bundleSuffix, "strata-2-live" + bundleSuffix} {
		if err := os.MkdirAll(filepath.Join(stateDir, name, "sub"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(stateDir, name, "config.json"), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(stateDir, name, runtimeRecord), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	reaped, err := Reap(t.Context(), "", stateDir, func(id string) bool { return strings.Contains(id, "dead") })
	if err != nil {
		t.Fatalf("Reap: %v", err)
	}
	if diff := cmp.Diff([]string{"strata-1-dead"}, reaped); diff != "" {
		t.Errorf("Reap ids (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"strata-2-live" + bundleSuffix}, names(t, stateDir)); diff != "" {
		t.Errorf("state dir after Reap (-want +got):\n%s", diff)
	}
}

// names lists dir's entries.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestStopStaleThawsAFrozenCgroup: a killed build's container whose cgroup
// was left frozen (its runtime freezes it to signal it) is emptied, not
// waited on: a frozen process takes no SIGKILL until thawed.
func TestStopStaleThawsAFrozenCgroup(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	id := "strata-frozen-test-" + newID()[:8]
	var freeze func(dir string) error
	var dir string
	for _, m := range cgroupMounts() {
		switch {
		case exists(filepath.Join(m, cgroupParent, "freezer.state")): // cgroup v1's freezer
			freeze = func(d string) error { return os.WriteFile(filepath.Join(d, "freezer.state"), []byte("FROZEN"), 0) }
		case exists(filepath.Join(m, cgroupParent, "cgroup.freeze")): // v2
			freeze = func(d string) error { return os.WriteFile(filepath.Join(d, "cgroup.freeze"), []byte("1"), 0) }
		default:
			continue
		}
		dir = filepath.Join(m, cgroupParent, id)
		break
	}
	if freeze == nil {
		t.Fatal("no freezer: neither a cgroup v1 freezer hierarchy with strata's cgroup nor cgroup v2")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = removeCgroups(id) })
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(fmt.Sprint(cmd.Process.Pid)), 0); err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	if err := freeze(dir); err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	start := time.Now()
	if err := stopStale(t.TempDir(), id); err != nil {
		t.Errorf("stopStale: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("stopStale took %s", took)
	}
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Error("the frozen process still runs after stopStale")
		_ = os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
		cmd.Process.Kill()
	}
	if err := removeCgroups(id); err != nil {
		t.Errorf("removeCgroups: %v", err)
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// TestReapStopsOnlyTheRecordedRuntime: a bundle's runtime record names a
// process by pid, start time and boot; Reap kills it only if all three are
// this process's: a record of another boot (the state root outlives a
// reboot) names nothing that runs now.
func TestReapStopsOnlyTheRecordedRuntime(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	for _, tc := range []struct {
		name   string
		boot   string
		killed bool
	}{
		{"another boot", "00000000-0000-0000-0000-000000000000", false},
		{"this boot", bootID(), true},
		{"no boot (an older strata's record)", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("sleep", "60")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan struct{})
			go func() { cmd.Wait(); close(waited) }()
			t.Cleanup(func() { cmd.Process.Kill(); <-waited })
			start, _, err := owner.ProcStat(cmd.Process.Pid)
			if err != nil {
				t.Fatal(err)
			}
			stateDir := t.TempDir()
			id := "strata-1-record"
			if err := os.Mkdir(filepath.Join(stateDir, id+bundleSuffix), 0o700); err != nil {
				t.Fatal(err)
			}
			rec := fmt.Sprintf("%d %d %s\n", cmd.Process.Pid, start, tc.boot)
			if err := os.WriteFile(filepath.Join(stateDir, id+bundleSuffix, runtimeRecord), []byte(rec), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Reap(t.Context(), "", stateDir, func(string) bool { return true }); err != nil {
				t.Fatalf("Reap: %v", err)
			}
			select {
			case <-waited:
				if !tc.killed {
					t.Error("Reap killed the process a record of another boot names")
				}
			case <-time.After(500 * time.Millisecond):
				if tc.killed {
					t.Error("Reap left the recorded runtime running")
				}
			}
		})
	}
}
