package main_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stratabuild/strata/internal/testutil"
)

// runStepRecipe is a recipe on the busybox base (no /etc/hosts,
// /etc/resolv.conf or /etc/hostname) whose run steps do what docker's RUN
// lets them: a build user becomes root through a setuid su (as with sudo),
// a write to /etc/hostname is committed, a write to /etc/hosts is refused.
const runStepRecipe = `from: oci-layout://%s
steps:
  - run: mkdir /suid && cp /bin/busybox /suid/busybox && chmod 4755 /suid/busybox && sed -i 's/^root:x:/root::/' /etc/passwd
  - user: app
  - run: /suid/busybox su -c 'id -u > /su-uid' root
  - user: root
  - run: echo built > /etc/hostname; if echo 10.1.2.3 x >> /etc/hosts; then echo written; else echo refused; fi > /hosts-write
`

// TestRunStepAsDocker builds runStepRecipe as root, then rootless: the
// same image, with the su's file, the step's /etc/hostname, the refused
// /etc/hosts write, and no /etc/hosts or /etc/resolv.conf in any layer. A
// `set -e` step writing /etc/hosts fails the build, as in docker.
func TestRunStepAsDocker(t *testing.T) {
	requireBuildTools(t)
	bb := shared(t, testutil.BusyboxLayout(t))
	ctx := sharedRecipe(t, strings.Replace(runStepRecipe, "%s", bb+":"+testutil.BusyboxTag, 1), map[string]string{})
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	out := filepath.Join(t.TempDir(), "img.oci")
	rootful := mustBuild(t, env, "--root", t.TempDir(), "-t", "rs:1", "-o", "type=oci,dest="+out, ctx)

	names := builtNames(t, out, "rs:1")
	for _, name := range []string{"etc/hosts", "etc/resolv.conf"} {
		if slices.Contains(names, name) {
			t.Errorf("a layer holds %s, which the base has not and no step could write", name)
		}
	}
	rootfs := unpackRootfs(t, out+":rs:1")
	for name, want := range map[string]string{"su-uid": "0\n", "etc/hostname": "built\n", "hosts-write": "refused\n"} {
		if b, err := os.ReadFile(filepath.Join(rootfs, name)); err != nil || string(b) != want {
			t.Errorf("/%s = %q, %v; want %q", name, b, err, want)
		}
	}

	failing := writeRecipe(t, "from: oci-layout://"+bb+":"+testutil.BusyboxTag+`
steps:
  - run: set -e; echo 10.1.2.3 x >> /etc/hosts; echo after
`, map[string]string{})
	r := strata(t, nil, "build", "--root", t.TempDir(), failing)
	if r.code != 1 || !strings.Contains(r.stderr, "Read-only file system") || strings.Contains(r.stderr, "| after") {
		t.Errorf("a set -e step writing /etc/hosts: exit %d, want 1 with Read-only file system\n%s", r.code, r.stderr)
	}

	t.Run("rootless", func(t *testing.T) {
		u := requireRootless(t)
		dir := testutil.SharedDir(t)
		rootless := mustBuildAs(t, u, env, "--root", filepath.Join(dir, "root"), "-t", "rs:1",
			"-o", "type=oci,dest="+filepath.Join(dir, "img.oci"), ctx)
		if rootless != rootful {
			t.Errorf("rootless build gave %s, rootful %s", rootless, rootful)
		}
	})
}
