package sandbox

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

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
		if err := unix.Unmount(merged, 0); err != nil {
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
