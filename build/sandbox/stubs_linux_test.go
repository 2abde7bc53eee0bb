package sandbox

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stratabuild/strata/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestRunLeavesNothing: after a run, the rootfs differs from before only by
// what the process wrote — no mount stubs, init files or mounts; a write to
// /etc/hosts fails, one to /etc/hostname is the process's own — and no
// runtime state, cgroup or temp dir remains. Not parallel: it points TMPDIR
// at a dir of its own to see what Run leaves there.
func TestRunLeavesNothing(t *testing.T) {
	requireRunc(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	rootfs := busybox(t)
	// An /etc/resolv.conf symlink to a missing file: the runtime creates
	// the file it points to, which must go too.
	if err := os.Symlink("../run/resolv.conf", filepath.Join(rootfs, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(rootfs, "var"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := tree(t, rootfs)
	id := "strata-leaves-" + newID()[:8]
	r := run(t.Context(), t, Options{
		Rootfs: rootfs, ID: id, Network: NetworkHost,
		Args: []string{"sh", "-c", "echo hi > /new; mkdir /var/cache/kept; echo x > /etc/hosts; echo x > /etc/hostname"},
		Mounts: []Mount{
			{Type: "tmpfs", Target: "/var/cache/apt/archives"},
			{Type: "bind", Source: t.TempDir(), Target: "/root/.cache/go-build"},
		},
	})
	if r.err != nil {
		t.Fatalf("Run: %v\n%s", r.err, r.stderr)
	}
	after := tree(t, rootfs)
	want := maps.Clone(before)
	want["new"] = "-rw-r--r-- 0:0 " + sha256Hex("hi\n")
	want["var/cache"] = "drwxr-xr-x 0:0"
	want["var/cache/kept"] = "drwxr-xr-x 0:0"
	want["etc/hostname"] = "-rw-r--r-- 0:0 " + sha256Hex("x\n")
	if diff := cmp.Diff(want, after); diff != "" {
		t.Errorf("rootfs after run (-want +got):\n%s", diff)
	}
	if m := mountsUnder(t, rootfs); len(m) != 0 {
		t.Errorf("mounts left under the rootfs: %v", m)
	}
	if entries, _ := os.ReadDir(tmp); len(entries) != 0 {
		t.Errorf("temp dir entries left: %v", entries)
	}
}

// TestRunOnOverlay runs on a merged overlay dir, as a build step does: the
// upper dir must hold only what the process wrote (and copied-up parent
// dirs), no stubs and no whiteouts.
func TestRunOnOverlay(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	base := t.TempDir()
	lower, upper, work, merged := filepath.Join(base, "lower"), filepath.Join(base, "upper"), filepath.Join(base, "work"), filepath.Join(base, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	testutil.BusyboxRootfs(t, lower)
	if err := os.Mkdir(filepath.Join(lower, "proc"), 0o555); err != nil { // an existing stub target stays
		t.Fatal(err)
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work + ",index=off,redirect_dir=off,metacopy=off"
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Fatalf("mounting overlay: %v", err)
	}
	t.Cleanup(func() {
		// A parallel test's runc, making its mount namespace, holds a
		// copy of this mount for a moment: busy, as a build's unmount
		// finds it (layers retries too).
		err := unix.Unmount(merged, 0)
		for i := 0; errors.Is(err, unix.EBUSY) && i < 50; i++ {
			time.Sleep(20 * time.Millisecond)
			err = unix.Unmount(merged, 0)
		}
		if err != nil {
			t.Errorf("unmounting overlay: %v", err)
		}
	})
	r := run(t.Context(), t, Options{
		Rootfs: merged, Args: []string{"sh", "-c", "echo hi > /new"},
		Mounts: []Mount{{Type: "tmpfs", Target: "/tmp/cache"}},
	})
	if r.err != nil {
		t.Fatalf("Run: %v\n%s", r.err, r.stderr)
	}
	got := slices.Sorted(maps.Keys(tree(t, upper)))
	// etc is copied up when the runtime creates its stubs (hosts,
	// resolv.conf) in it; it is left empty, with its lower metadata.
	if diff := cmp.Diff([]string{".", "etc", "new"}, got); diff != "" {
		t.Errorf("upper dir entries (-want +got):\n%s", diff)
	}
	if a, b := describe(t, filepath.Join(lower, "etc")), describe(t, filepath.Join(upper, "etc")); a != b {
		t.Errorf("copied-up etc = %s, lower etc = %s; want the same", b, a)
	}
}

func sha256Hex(s string) string {
	return fmt.Sprintf("%x", sha256.Sum256([]byte(s)))
}

// TestStubParentSwappedForLink: a step that replaces the parent of a
// mount stub with a symlink to a host dir (mv /newdir /x && ln -s HOST
// /newdir) does not make the clean-up after it remove the host's empty
// file and dir of the stubs' names, nor touch the host dir.
func TestStubParentSwappedForLink(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	victim := t.TempDir()
	if err := os.Mkdir(filepath.Join(victim, "somedir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(victim, "emptyfile"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Unix(1000000000, 0)
	if err := os.Chtimes(victim, old, old); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t.Context(), t, Options{
		Rootfs: busybox(t),
		Args:   []string{"sh", "-c", "mv /newdir /nd2 && ln -s " + victim + " /newdir"},
		Mounts: []Mount{
			{Type: "tmpfs", Target: "/newdir/somedir"},
			{Type: "bind", Source: secret, Target: "/newdir/emptyfile", ReadOnly: true},
		},
	})
	if r.err != nil {
		t.Fatalf("Run: %v\n%s", r.err, r.stderr)
	}
	for _, name := range []string{"somedir", "emptyfile"} {
		if _, err := os.Lstat(filepath.Join(victim, name)); err != nil {
			t.Errorf("the host's %s: %v; the clean-up followed the step's link out of the rootfs", name, err)
		}
	}
	if fi, err := os.Stat(victim); err != nil || !fi.ModTime().Equal(old) {
		t.Errorf("the host dir's mtime: %v, %v; want it untouched (%v)", fi.ModTime(), err, old)
	}
}

// TestNestedMountTargets: a mount whose target is under another mount's,
// both missing from the rootfs, listed in either order, runs: the outer is
// mounted first (as BuildKit does), the inner on it, and what the step
// writes to the inner lands there.
func TestNestedMountTargets(t *testing.T) {
	requireRunc(t)
	t.Parallel()
	for _, innerFirst := range []bool{true, false} {
		outer := t.TempDir()
		rootfs := busybox(t)
		mounts := []Mount{{Type: "bind", Source: outer, Target: "/a"}, {Type: "tmpfs", Target: "/a/b/c"}}
		if innerFirst {
			mounts[0], mounts[1] = mounts[1], mounts[0]
		}
		r := run(t.Context(), t, Options{
			Rootfs: rootfs,
			Args:   []string{"sh", "-c", "echo x > /a/b/c/f && echo y > /a/g"},
			Mounts: mounts,
		})
		if r.err != nil {
			t.Fatalf("Run (inner listed first: %t): %v\n%s", innerFirst, r.err, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(outer, "g")); err != nil {
			t.Errorf("inner listed first: %t: the outer mount did not get /a/g: %v", innerFirst, err)
		}
		if _, err := os.Stat(filepath.Join(outer, "b", "c", "f")); err == nil {
			t.Errorf("inner listed first: %t: /a/b/c/f went into the outer mount: the tmpfs was under it", innerFirst)
		}
		if _, err := os.Lstat(filepath.Join(rootfs, "a")); err == nil {
			t.Errorf("inner listed first: %t: the stub /a is left in the rootfs", innerFirst)
		}
	}
}
