package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/testutil"
)

var (
	probeOnce sync.Once
	probeErr  error
)

// requireRunc skips (or fails under STRATA_REQUIRE_PRIVILEGED=1) unless a
// container really runs: root, runc installed, cgroups and namespaces usable.
func requireRunc(t testing.TB) {
	t.Helper()
	testutil.RequireRoot(t)
	probeOnce.Do(func() {
		dir, err := os.MkdirTemp("", "strata-probe-")
		if err != nil {
			probeErr = err
			return
		}
		defer os.RemoveAll(dir)
		testutil.BusyboxRootfs(t, dir)
		probeErr = Run(t.Context(), Options{Rootfs: dir, Args: []string{"true"}})
	})
	testutil.Require(t, "runc", func() error { return probeErr }, "apt-get install -y runc; run the tests as root")
}

// busybox returns a fresh busybox rootfs in a temp dir.
func busybox(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rootfs")
	testutil.BusyboxRootfs(t, dir)
	return dir
}

// result is what a run produced.
type result struct {
	stdout, stderr string
	err            error
}

// run runs args in rootfs with o's other fields, capturing output.
func run(ctx context.Context, t testing.TB, o Options) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	o.Stdout, o.Stderr = &stdout, &stderr
	err := Run(ctx, o)
	return result{stdout.String(), stderr.String(), err}
}

// describe returns "mode uid:gid" of path, e.g. "drwxr-xr-x 0:0".
func describe(t testing.TB, path string) string {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
}

// assertNoTraces checks that container id left no runtime state in
// stateDir and no cgroup in any hierarchy.
func assertNoTraces(t testing.TB, id, stateDir string) {
	t.Helper()
	if entries, err := os.ReadDir(stateDir); err != nil || len(entries) != 0 {
		t.Errorf("runtime state dir %s: entries %v (%v), want none", stateDir, entries, err)
	}
	mounts := cgroupMounts()
	if len(mounts) == 0 {
		t.Fatal("no cgroup hierarchy found in /proc/self/mountinfo")
	}
	for _, m := range mounts {
		p := filepath.Join(m, cgroupParent, id)
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cgroup %s left behind (Stat: %v)", p, err)
		}
	}
}

// tree describes every entry under root: relative path → type, mode,
// owner, size and content or link target.
func tree(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		desc := describe(t, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + l
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mountsUnder returns the mount points at or below dir.
func mountsUnder(t testing.TB, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

// setuidRootfs returns a busybox rootfs where app may become root with
// su, as sudo lets a build user, and ping with a file capability: root has
// an empty password, /suid/busybox is a setuid-root copy of busybox and
// /caps/busybox one with cap_net_raw+ep. busybox drops a setuid euid for
// its other applets (id, cat), so su is the test.
func setuidRootfs(t testing.TB) string {
	t.Helper()
	rootfs := busybox(t)
	passwd := "root::0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
	if err := os.WriteFile(filepath.Join(rootfs, "etc/passwd"), []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(rootfs, "bin/busybox"))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"suid", "caps"} {
		if err := os.Mkdir(filepath.Join(rootfs, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rootfs, dir, "busybox"), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(rootfs, "suid/busybox"), os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	capNetRaw := []byte{
		0x01, 0x00, 0x00, 0x02, // VFS_CAP_REVISION_2 | effective
		0x00, 0x20, 0x00, 0x00, // permitted, low 32 bits: bit 13, CAP_NET_RAW
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // inheritable low, permitted and inheritable high
	}
	if err := unix.Setxattr(filepath.Join(rootfs, "caps/busybox"), "security.capability", capNetRaw, 0); err != nil {
		t.Fatal(err)
	}
	return rootfs
}

// assertSetuidWorks runs, as app in a setuidRootfs, su to root through
// the setuid busybox and ping (a raw socket) through the one with
// cap_net_raw: su must print root's uid and ping must reach loopback, the
// step running without no_new_privs, as docker's RUN does.
func assertSetuidWorks(t *testing.T) {
	t.Helper()
	script := `grep NoNewPrivs /proc/self/status
/suid/busybox su -c 'id -u' root
/caps/busybox ping -c1 127.0.0.1 >/dev/null && echo ping
`
	r := run(t.Context(), t, Options{Rootfs: setuidRootfs(t), User: "app", Args: []string{"sh", "-c", script}})
	if r.err != nil {
		t.Errorf("su and ping as app: %v\n%s%s", r.err, r.stdout, r.stderr)
		return
	}
	if want := "NoNewPrivs:\t0\n0\nping\n"; r.stdout != want {
		t.Errorf("as app, su through a setuid busybox and ping with cap_net_raw printed %q, want %q (no no_new_privs, root's uid, ping)\n%s", r.stdout, want, r.stderr)
	}
}

// assertInitFiles checks the init files as docker BuildKit gives them:
// /etc/hosts (naming the hostname) and /etc/resolv.conf read-only, so a
// write fails loudly; /etc/hostname not covered, so the base's shows and a
// step's write lands in the rootfs; and no stub left where the base had no
// /etc/hosts or /etc/resolv.conf.
func assertInitFiles(t *testing.T) {
	t.Helper()
	rootfs := busybox(t)
	if err := os.WriteFile(filepath.Join(rootfs, "etc/hostname"), []byte("base\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `hostname
cat /etc/hostname
grep -c builder /etc/hosts
echo 10.1.2.3 x >> /etc/hosts || echo hosts not written
echo nameserver 10.1.2.3 > /etc/resolv.conf || echo resolv.conf not written
echo built > /etc/hostname
`
	r := run(t.Context(), t, Options{Rootfs: rootfs, Hostname: "builder", Args: []string{"sh", "-c", script}})
	if r.err != nil {
		t.Fatalf("Run: %v\n%s", r.err, r.stderr)
	}
	want := "builder\nbase\n1\nhosts not written\nresolv.conf not written\n"
	if r.stdout != want {
		t.Errorf("hostname, /etc/hostname, /etc/hosts and writes to the init files: %q, want %q", r.stdout, want)
	}
	if n := strings.Count(r.stderr, "Read-only file system"); n != 2 {
		t.Errorf("stderr says %d times Read-only file system, want 2 (hosts, resolv.conf):\n%s", n, r.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(rootfs, "etc/hostname")); err != nil || string(b) != "built\n" {
		t.Errorf("/etc/hostname after the step = %q, %v; want the step's write, built", b, err)
	}
	for _, f := range []string{"etc/hosts", "etc/resolv.conf"} {
		if _, err := os.Lstat(filepath.Join(rootfs, f)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s, absent in the base, is left in the rootfs: %v", f, err)
		}
	}
}
