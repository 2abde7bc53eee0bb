package sandbox

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRunOutput(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	r := run(t.Context(), t, Options{Rootfs: busybox(t), Args: []string{"sh", "-c", "echo out; echo err >&2; echo out2"}})
	if r.err != nil {
		t.Fatalf("Run: %v", r.err)
	}
	if diff := cmp.Diff("out\nout2\n", r.stdout); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("err\n", r.stderr); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
}

// TestRunExitStatus: the process's exit status is Run's result, and the
// run, whatever its status, leaves no runtime state or cgroup.
func TestRunExitStatus(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	for _, tc := range []struct {
		script string
		want   int // 0: no error
	}{
		{"true", 0},
		{"false", 1},
		{"exit 3", 3},
		{"exit 255", 255},
	} {
		t.Run(tc.script, func(t *testing.T) {
			t.Parallel()
			stateDir := t.TempDir()
			id := "strata-status-test-" + newID()[:8]
			r := run(t.Context(), t, Options{Rootfs: busybox(t), ID: id, StateDir: stateDir, Args: []string{"sh", "-c", tc.script}})
			assertNoTraces(t, id, stateDir)
			var exitErr *ExitError
			switch {
			case tc.want == 0 && r.err != nil:
				t.Errorf("Run(%q) = %v, want nil", tc.script, r.err)
			case tc.want != 0 && !errors.As(r.err, &exitErr):
				t.Errorf("Run(%q) = %v, want *ExitError{%d}", tc.script, r.err, tc.want)
			case tc.want != 0 && exitErr.Status != tc.want:
				t.Errorf("Run(%q) status = %d, want %d", tc.script, exitErr.Status, tc.want)
			}
		})
	}
}

// TestRunMissingCommand: a program the rootfs does not have is said so —
// a shell in an empty (scratch) rootfs too — but one under a mount target
// is left to the runtime's error, since the mount is not seen from here.
func TestRunMissingCommand(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	for _, tc := range []struct {
		name, prog string
		rootfs     func(t *testing.T) string
		mounts     []Mount
		noProgram  bool
		hint       bool // says that the stage has no shell
	}{
		{name: "busybox", prog: "/no/such/cmd", rootfs: func(t *testing.T) string { return busybox(t) }, noProgram: true},
		{name: "scratch", prog: "/bin/sh", rootfs: func(t *testing.T) string { return t.TempDir() }, noProgram: true, hint: true},
		{name: "under a mount", prog: "/tools/cmd", rootfs: func(t *testing.T) string { return busybox(t) },
			mounts: []Mount{{Type: "bind", Source: t.TempDir(), Target: "/tools"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t.Context(), t, Options{Rootfs: tc.rootfs(t), Args: []string{tc.prog, "-c", "true"}, Mounts: tc.mounts})
			var exitErr *ExitError
			if r.err == nil || errors.As(r.err, &exitErr) || !strings.Contains(r.err.Error(), tc.prog) {
				t.Fatalf("Run(%s) = %v, want a start error naming the command", tc.prog, r.err)
			}
			if got := errors.Is(r.err, ErrNoProgram); got != tc.noProgram {
				t.Errorf("Run(%s) = %v; errors.Is(ErrNoProgram) = %t, want %t", tc.prog, r.err, got, tc.noProgram)
			}
			if got := strings.Contains(r.err.Error(), "has no shell"); got != tc.hint {
				t.Errorf("Run(%s) = %v; says the stage has no shell: %t, want %t", tc.prog, r.err, got, tc.hint)
			}
		})
	}
}

func TestRunEnv(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	for _, tc := range []struct {
		name string
		user string
		env  []string
		want string
	}{
		{"defaults", "", nil, "PATH=" + DefaultPath + "\nHOME=/root\nFOO=\n"},
		{"given", "", []string{"PATH=/bin", "HOME=/h", "FOO=a b=c"}, "PATH=/bin\nHOME=/h\nFOO=a b=c\n"},
		{"user home", "app", nil, "PATH=" + DefaultPath + "\nHOME=/home/app\nFOO=\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := run(t.Context(), t, Options{
				Rootfs: busybox(t), User: tc.user, Env: tc.env,
				Args: []string{"/bin/sh", "-c", `echo "PATH=$PATH"; echo "HOME=$HOME"; echo "FOO=$FOO"`},
			})
			if r.err != nil {
				t.Fatalf("Run: %v\n%s", r.err, r.stderr)
			}
			if diff := cmp.Diff(tc.want, r.stdout); diff != "" {
				t.Errorf("environment (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunUser(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	// testutil.BusyboxRootfs: app is 1000:1000 and a member of staff (50).
	for _, tc := range []struct {
		user string
		want string // id -u; id -g; id -G
	}{
		{"", "0\n0\n0\n"},
		{"root", "0\n0\n0\n"},
		{"app", "1000\n1000\n1000 50\n"},
		{"1000", "1000\n1000\n1000 50\n"},
		{"1000:50", "1000\n50\n50\n"},
		{"app:staff", "1000\n50\n50\n"},
		{"app:0", "1000\n0\n0\n"},
		{"4242", "4242\n0\n0\n"},
		{"4242:4243", "4242\n4243\n4243\n"},
	} {
		t.Run(tc.user, func(t *testing.T) {
			t.Parallel()
			r := run(t.Context(), t, Options{Rootfs: busybox(t), User: tc.user, Args: []string{"sh", "-c", "id -u; id -g; id -G"}})
			if r.err != nil {
				t.Fatalf("Run: %v\n%s", r.err, r.stderr)
			}
			if diff := cmp.Diff(tc.want, r.stdout); diff != "" {
				t.Errorf("user %q: id (-want +got):\n%s", tc.user, diff)
			}
		})
	}
	for _, user := range []string{"nobody", "app:nogroup"} {
		t.Run(user, func(t *testing.T) {
			t.Parallel()
			r := run(t.Context(), t, Options{Rootfs: busybox(t), User: user, Args: []string{"true"}})
			if r.err == nil || !strings.Contains(r.err.Error(), "is not in the image's /etc/") {
				t.Errorf("Run(User: %q) = %v, want an unknown user/group error", user, r.err)
			}
		})
	}
}

func TestRunCwd(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	rootfs := busybox(t)
	r := run(t.Context(), t, Options{Rootfs: rootfs, User: "app", Cwd: "/srv/app/src", Args: []string{"sh", "-c", "pwd; touch f"}})
	if r.err == nil {
		t.Errorf("Run(touch in a root-owned working dir as app) succeeded; want permission denied")
	}
	if diff := cmp.Diff("/srv/app/src\n", r.stdout); diff != "" {
		t.Errorf("pwd (-want +got):\n%s", diff)
	}
	for _, d := range []string{"srv", "srv/app", "srv/app/src"} {
		got := describe(t, filepath.Join(rootfs, d))
		if want := "drwxr-xr-x 0:0"; got != want {
			t.Errorf("created working dir /%s = %s, want %s", d, got, want)
		}
	}
}

func TestRunNetwork(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	hostIfaces, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	var host []string
	for _, e := range hostIfaces {
		host = append(host, e.Name())
	}
	for _, tc := range []struct {
		network string
		want    []string
	}{
		{"", []string{"lo"}},
		{NetworkNone, []string{"lo"}},
		{NetworkHost, host},
	} {
		t.Run(tc.network, func(t *testing.T) {
			t.Parallel()
			r := run(t.Context(), t, Options{Rootfs: busybox(t), Network: tc.network, Args: []string{"sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/flags"}})
			if r.err != nil {
				t.Fatalf("Run: %v\n%s", r.err, r.stderr)
			}
			lines := strings.Fields(r.stdout)
			ifaces, flags := lines[:len(lines)-1], lines[len(lines)-1]
			slices.Sort(ifaces)
			if diff := cmp.Diff(tc.want, ifaces); diff != "" {
				t.Errorf("network %q: interfaces (-want +got):\n%s", tc.network, diff)
			}
			if flags != "0x9" { // IFF_UP|IFF_LOOPBACK
				t.Errorf("network %q: lo flags = %s, want 0x9 (up)", tc.network, flags)
			}
		})
	}
}

func TestRunSecurity(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	script := `grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status
wc -c < /proc/keys
wc -c < /proc/timer_list
touch /sys/x 2>/dev/null && echo sys writable
echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo proc/sys writable
grep -E ' /(sys|proc/sys) ' /proc/mounts | cut -d' ' -f2,4 | cut -d, -f1
`
	r := run(t.Context(), t, Options{Rootfs: busybox(t), Args: []string{"sh", "-c", script}})
	if r.err != nil {
		t.Fatalf("Run: %v\n%s", r.err, r.stderr)
	}
	want := "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t0\n0\n0\n/sys ro\n/proc/sys ro\n"
	if diff := cmp.Diff(want, r.stdout); diff != "" {
		t.Errorf("capabilities, masked and read-only paths (-want +got):\n%s", diff)
	}
}

// TestRunInitFiles: the hostname strata sets, /etc/hosts and
// /etc/resolv.conf read-only, /etc/hostname the rootfs's own.
func TestRunInitFiles(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	assertInitFiles(t)
}

// TestRunSetuid: a setuid-root program makes a step's non-root user root,
// as sudo or su do in docker's RUN.
func TestRunSetuid(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	assertSetuidWorks(t)
}

func TestRunMounts(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	rootfs := busybox(t)
	src, ro := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(ro, "in"), []byte("from host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `grep -E ' /(scratch|cache/apt|secrets) ' /proc/mounts | cut -d' ' -f2,4 | cut -d, -f1
grep -c ' /scratch tmpfs ' /proc/mounts
echo cached > /cache/apt/out
echo tmp > /scratch/t
cat /secrets/in
touch /secrets/new 2>/dev/null && echo ro mount writable
true
`
	r := run(t.Context(), t, Options{Rootfs: rootfs, Args: []string{"sh", "-c", script}, Mounts: []Mount{
		{Type: "tmpfs", Target: "/scratch", Options: []string{"size=1m"}},
		{Type: "bind", Source: src, Target: "/cache/apt"},
		{Type: "bind", Source: ro, Target: "/secrets", ReadOnly: true},
	}})
	if r.err != nil {
		t.Fatalf("Run: %v\n%s", r.err, r.stderr)
	}
	want := "/scratch rw\n/secrets ro\n/cache/apt rw\n1\nfrom host\n" // mounted parents first, as BuildKit mounts them
	if diff := cmp.Diff(want, r.stdout); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	if b, err := os.ReadFile(filepath.Join(src, "out")); err != nil || string(b) != "cached\n" {
		t.Errorf("bind mount source/out = %q, %v; want \"cached\\n\"", b, err)
	}
	for _, stub := range []string{"scratch", "cache", "secrets"} {
		if _, err := os.Lstat(filepath.Join(rootfs, stub)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("mount stub /%s left in the rootfs (Lstat: %v)", stub, err)
		}
	}
}

// TestRunCancel: output streams while the process runs ("started" arrives
// before it exits), and cancelling ctx kills it at once and leaves no runtime
// state or cgroup.
func TestRunCancel(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	started := make(chan struct{})
	var once sync.Once
	stateDir := t.TempDir()
	o := Options{
		Rootfs: busybox(t), ID: "strata-cancel-test-" + newID()[:8], StateDir: stateDir,
		Args:   []string{"sh", "-c", "echo started; exec sleep 1000"},
		Stdout: writerFunc(func([]byte) { once.Do(func() { close(started) }) }),
	}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o) }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("Run returned before the process started: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("process did not start within 10s")
	}
	begin := time.Now()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancel")
	}
	if d := time.Since(begin); d > 3*time.Second {
		t.Errorf("Run took %v to return after cancel, want < 3s", d)
	}
	assertNoTraces(t, o.ID, stateDir)
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

func TestRunRuntime(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	path, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal(err)
	}
	r := run(t.Context(), t, Options{Rootfs: busybox(t), Runtime: path, Args: []string{"echo", "ok"}})
	if r.err != nil || r.stdout != "ok\n" {
		t.Errorf("Run(Runtime: %s) = %q, %v; want \"ok\\n\", nil", path, r.stdout, r.err)
	}
	rootfs := busybox(t)
	before := tree(t, rootfs)
	r = run(t.Context(), t, Options{Rootfs: rootfs, Runtime: "no-such-runtime", Args: []string{"true"}})
	if r.err == nil || !strings.Contains(r.err.Error(), "no-such-runtime") {
		t.Errorf("Run(Runtime: no-such-runtime) = %v, want an error naming the runtime", r.err)
	}
	if diff := cmp.Diff(before, tree(t, rootfs)); diff != "" {
		t.Errorf("rootfs after a failed start (-want +got):\n%s", diff)
	}
}

func TestRunCancelledBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rootfs := t.TempDir()
	err := Run(ctx, Options{Rootfs: rootfs, Args: []string{"true"}, Cwd: "/work"})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run(cancelled ctx) = %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(rootfs); len(entries) != 0 {
		t.Errorf("Run(cancelled ctx) wrote %v in the rootfs, want nothing", entries)
	}
}
