package sandbox

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stratabuild/strata/internal/testutil"
	"github.com/stratabuild/strata/internal/userns"
)

// Rootless tests run their body in a user namespace (testutil.InUserNS),
// as a rootless build runs its steps.

// TestRootlessRun runs steps as a rootless build does: in the build's own
// user namespace (the step sees the same id map), with docker's
// capabilities, masked and read-only paths, both network modes, a step
// user, bind and tmpfs mounts, and nothing left behind.
func TestRootlessRun(t *testing.T) {
	if !testutil.InUserNS(t, testutil.SubIDMaps) {
		return
	}
	requireRunc(t)
	ourMap, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		t.Fatal(err)
	}
	hostIfaces, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	var host []string
	for _, e := range hostIfaces {
		host = append(host, e.Name())
	}
	rootfs, state, data := busybox(t), t.TempDir(), t.TempDir()
	script := `cat /proc/self/uid_map
grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status
wc -c < /proc/keys
touch /sys/x 2>/dev/null && echo sys writable
echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo proc/sys writable
echo cached > /cache/f
touch /tmp/scratch
`
	r := run(t.Context(), t, Options{Rootfs: rootfs, StateDir: state, ID: "rootless-1", Args: []string{"sh", "-c", script},
		Mounts: []Mount{{Type: "bind", Source: data, Target: "/cache"}, {Type: "tmpfs", Target: "/tmp"}}})
	if r.err != nil {
		t.Fatalf("Run: %v\n%s", r.err, r.stderr)
	}
	want := string(ourMap) + "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t0\n0\n"
	if diff := cmp.Diff(want, r.stdout); diff != "" {
		t.Errorf("id map, capabilities, masked and read-only paths (-want +got):\n%s", diff)
	}
	if b, err := os.ReadFile(data + "/f"); err != nil || string(b) != "cached\n" {
		t.Errorf("the bind mount holds %q, %v", b, err)
	}
	assertNoTraces(t, "rootless-1", state)

	for _, tc := range []struct {
		network string
		want    []string
	}{{NetworkNone, []string{"lo"}}, {NetworkHost, host}} {
		r := run(t.Context(), t, Options{Rootfs: rootfs, Network: tc.network, Args: []string{"ls", "/sys/class/net"}})
		if r.err != nil {
			t.Fatalf("network %s: Run: %v\n%s", tc.network, r.err, r.stderr)
		}
		got := strings.Fields(r.stdout)
		slices.Sort(got)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("network %s: interfaces (-want +got):\n%s", tc.network, diff)
		}
	}

	r = run(t.Context(), t, Options{Rootfs: rootfs, User: "app", Args: []string{"sh", "-c", "id -u; id -G; echo x > /home-app-file"}})
	if r.err == nil || !strings.Contains(r.stderr, "Permission denied") {
		t.Errorf("app wrote into / (owned by root): %v\n%s", r.err, r.stdout)
	}
	if err := os.Mkdir(rootfs+"/work", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(rootfs+"/work", 1000, 1000); err != nil {
		t.Fatal(err)
	}
	r = run(t.Context(), t, Options{Rootfs: rootfs, User: "app", Args: []string{"sh", "-c", "id -u; id -G; echo x > /work/f"}})
	if r.err != nil {
		t.Fatalf("as app: %v\n%s", r.err, r.stderr)
	}
	if r.stdout != "1000\n1000 50\n" {
		t.Errorf("as app: id says %q, want uid 1000, groups 1000 50", r.stdout)
	}
	if got := describe(t, rootfs+"/work/f"); !strings.HasSuffix(got, " 1000:1000") {
		t.Errorf("a file app made is %s, want owned by 1000:1000 as the image sees it", got)
	}
}

// TestRootlessSetuidAndInitFiles: in a rootless build too, a setuid-root
// program makes a step's user root (the build namespace's root), and the
// init files are as in a rootful run.
func TestRootlessSetuidAndInitFiles(t *testing.T) {
	if !testutil.InUserNS(t, testutil.SubIDMaps) {
		return
	}
	requireRunc(t)
	assertSetuidWorks(t)
	assertInitFiles(t)
}

// TestRootlessLimits: with no cgroup of its own, a rootless run refuses an
// explicit pids or memory limit, and runs without the default pids limit.
func TestRootlessLimits(t *testing.T) {
	if !testutil.InUserNS(t, testutil.SubIDMaps) {
		return
	}
	requireRunc(t)
	for _, o := range []Options{{PidsLimit: 100}, {MemoryLimit: 64 << 20}} {
		o.Rootfs, o.Args = busybox(t), []string{"true"}
		if err := Run(t.Context(), o); !errors.Is(err, errRootlessLimit) {
			t.Errorf("Run with pids limit %d, memory limit %d = %v, want a refusal", o.PidsLimit, o.MemoryLimit, err)
		}
	}
	if r := run(t.Context(), t, Options{Rootfs: busybox(t), PidsLimit: -1, MemoryLimit: -1, Args: []string{"true"}}); r.err != nil {
		t.Errorf("Run with no limits: %v\n%s", r.err, r.stderr)
	}
}

// TestRootlessOwnIDsOnly: with only the user's own ids mapped, root's
// steps run (/dev/pts without gid=5), a step user outside the map is
// refused before anything runs, naming the user.
func TestRootlessOwnIDsOnly(t *testing.T) {
	if !testutil.InUserNS(t, testutil.OwnIDMaps) {
		return
	}
	requireRunc(t)
	rootfs := busybox(t)
	if r := run(t.Context(), t, Options{Rootfs: rootfs, Args: []string{"sh", "-c", "id -u; ls /dev/pts/ptmx"}}); r.err != nil || r.stdout != "0\n/dev/pts/ptmx\n" {
		t.Errorf("as root: %q, %v\n%s", r.stdout, r.err, r.stderr)
	}
	err := Run(t.Context(), Options{Rootfs: rootfs, User: "app", Args: []string{"true"}})
	var unmapped *userns.UnmappedError
	if !errors.As(err, &unmapped) || unmapped.User != "app" || unmapped.UID != 1000 {
		t.Fatalf("Run as app = %v, want a *userns.UnmappedError for app (1000)", err)
	}
	if !strings.Contains(err.Error(), `the step's user "app" is 1000:1000, which this rootless build cannot represent`) {
		t.Errorf("message: %v", err)
	}
}
