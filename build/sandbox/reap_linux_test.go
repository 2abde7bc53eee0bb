package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
	line, err := bufio.NewReader(out).ReadString('\n')
	if line != "started\n" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the step did not start: %q, %v", line, err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
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
// removed when its id is stale, and kept when not.
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
