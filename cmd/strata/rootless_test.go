package main_test

// Rootless end-to-end tests: the strata binary run by an unprivileged user
// (testutil.RootlessUser, with subordinate ids), as CI runners without root
// run it, and compared with what it builds as root.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/testutil"
)

// userBin is the strata binary where u can run it: strataBin's dir is
// root's alone.
func userBin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(testutil.SharedDir(t), "strata")
	if err := os.Link(strataBin, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// strataAs runs strata as u with env (HOME and a standard PATH given).
func strataAs(t *testing.T, u testutil.User, env []string, args ...string) result {
	t.Helper()
	r, err := runCmd(u.Command(env, userBin(t), args...))
	if err != nil {
		t.Fatalf("running strata as %s: %v", u.Name, err)
	}
	return r
}

// mustBuildAs is mustBuild as u.
func mustBuildAs(t *testing.T, u testutil.User, env []string, args ...string) string {
	t.Helper()
	r := strataAs(t, u, env, append([]string{"build"}, args...)...)
	if r.code != 0 {
		t.Fatalf("strata build %s as %s: exit %d\n%s", strings.Join(args, " "), u.Name, r.code, r.stderr)
	}
	dg := strings.TrimSpace(r.stdout)
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(dg) {
		t.Fatalf("stdout is not only a digest: %q", r.stdout)
	}
	return dg
}

// requireRootless needs what requireBuildTools needs and the rootless
// user.
func requireRootless(t *testing.T) testutil.User {
	t.Helper()
	requireBuildTools(t)
	return testutil.RootlessUser(t)
}

// shared copies the tree at src into a dir every user can read.
func shared(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(testutil.SharedDir(t), filepath.Base(src))
	run(t, nil, "cp", "-a", src, dst)
	run(t, nil, "chmod", "-R", "a+rX", dst)
	return dst
}

// sharedRecipe is writeRecipe into a dir every user can read.
func sharedRecipe(t *testing.T, yaml string, files map[string]string) string {
	t.Helper()
	return shared(t, writeRecipe(t, yaml, files))
}

// rootlessBase is the fidelity base with one more layer of files owned by
// ids in and beyond the first 65536, tagged "rl", in a shared dir.
func rootlessBase(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []tar.Header{
		{Name: "own/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "own/u1000", Typeflag: tar.TypeReg, Mode: 0o644, Uid: 1000, Gid: 1000, Size: 5},
		{Name: "own/u100000", Typeflag: tar.TypeReg, Mode: 0o640, Uid: 100000, Gid: 100000, Size: 5},
		{Name: "own/setuid", Typeflag: tar.TypeReg, Mode: 0o755, Size: 5},
		{Name: "own/chownme", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5},
	} {
		h.ModTime, h.Format = testutil.BusyboxEpoch, tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, "data\n"[:h.Size]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(layoutImage(t, fidelityBase(t), "fid"), l)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(testutil.SharedDir(t), "base.oci")
	lp, err := layout.Write(out, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "rl"})); err != nil {
		t.Fatal(err)
	}
	run(t, nil, "chmod", "-R", "a+rX", out)
	return out
}

// TestRootlessSameDigestAsRootful builds one recipe as root and as an
// unprivileged user with SOURCE_DATE_EPOCH: the same digest. The recipe
// deletes a base file, replaces a dir, chowns a file, sets setuid, keeps a
// file capability and a user.* xattr, hardlinks a base file, makes a file
// owned by 100000 and copies from the context with an owner. umoci reads
// the rootless image back; the rootless snapshots hold the base's owners
// as the user's mapped ids.
func TestRootlessSameDigestAsRootful(t *testing.T) {
	u := requireRootless(t)
	base := rootlessBase(t)
	ctx := sharedRecipe(t, `from: oci-layout://`+base+`:rl
steps:
  - run: rm /fid/gone
  - run: rm -rf /fid/dir && mkdir /fid/dir && echo new > /fid/dir/new
  - run: chmod 0700 /fid/capfile && chown 1000:1000 /own/chownme && chmod 4755 /own/setuid && chmod 0600 /own/u100000
  - run: ln /fid/target /fid/link
  - run: mkdir /made && echo made > /made/by100000 && chown 100000:100000 /made/by100000
  - copy: ctx.txt
    to: /opt/ctx.txt
    owner: "1000:1000"
`, map[string]string{"ctx.txt": "from the context\n"})
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	rootfulOut := filepath.Join(t.TempDir(), "img.oci")
	rootful := mustBuild(t, env, "--root", t.TempDir(), "-t", "rl:out", "-o", "type=oci,dest="+rootfulOut, ctx)
	dir := testutil.SharedDir(t)
	root, out := filepath.Join(dir, "root"), filepath.Join(dir, "img.oci")
	rootless := mustBuildAs(t, u, env, "--root", root, "-t", "rl:out", "-o", "type=oci,dest="+out, ctx)
	if rootless != rootful {
		t.Errorf("rootless build gave %s, rootful %s", rootless, rootful)
	}
	if got := ociIndexDigest(t, out, "rl:out"); got != rootless {
		t.Errorf("the layout has %s, strata printed %s", got, rootless)
	}
	if fi, err := os.Stat(out); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(u.UID) {
		t.Errorf("the output is not the user's: %v", err)
	}

	// The tree as umoci unpacks it.
	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, nil, "umoci", "unpack", "--image", out+":rl:out", bundle)
	rootfs := filepath.Join(bundle, "rootfs")
	if _, err := os.Lstat(filepath.Join(rootfs, "fid/gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("fid/gone survives: %v", err)
	}
	if d := cmp.Diff([]string{"new"}, listDir(t, filepath.Join(rootfs, "fid/dir"))); d != "" {
		t.Errorf("fid/dir (-want +got):\n%s", d)
	}
	type meta struct {
		mode     os.FileMode
		uid, gid uint32
	}
	for name, want := range map[string]meta{
		"fid/capfile":     {0o700, 0, 0},
		"own/chownme":     {0o644, 1000, 1000},
		"own/setuid":      {0o755 | os.ModeSetuid, 0, 0},
		"own/u1000":       {0o644, 1000, 1000},
		"own/u100000":     {0o600, 100000, 100000},
		"made/by100000":   {0o644, 100000, 100000},
		"opt/ctx.txt":     {0o644, 1000, 1000},
		"fid/link":        {0o644, 0, 0},
		"bin/busybox":     {0o755, 0, 0},
		"fid/dir/new":     {0o644, 0, 0},
		"fid/dir/../dir/": {os.ModeDir | 0o755, 0, 0},
	} {
		fi, err := os.Lstat(filepath.Join(rootfs, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := (meta{fi.Mode() & (os.ModeType | os.ModePerm | os.ModeSetuid), st.Uid, st.Gid}); got != want {
			t.Errorf("%s: %v %d:%d, want %v %d:%d", name, got.mode, got.uid, got.gid, want.mode, want.uid, want.gid)
		}
	}
	capfile := filepath.Join(rootfs, "fid/capfile")
	for name, want := range map[string][]byte{"user.note": []byte("hello"), "security.capability": capNetBindService} {
		got := make([]byte, 256)
		n, err := unix.Lgetxattr(capfile, name, got)
		if err != nil || !bytes.Equal(got[:n], want) {
			t.Errorf("capfile xattr %s = %q (%v), want %q", name, got[:max(n, 0)], err, want)
		}
	}
	a, errA := os.Lstat(filepath.Join(rootfs, "fid/target"))
	b, errB := os.Lstat(filepath.Join(rootfs, "fid/link"))
	if errA != nil || errB != nil || a.Sys().(*syscall.Stat_t).Ino != b.Sys().(*syscall.Stat_t).Ino {
		t.Errorf("fid/link is not a hardlink of fid/target: %v %v", errA, errB)
	}

	// In the user's state dir the base's files are owned by the ids the
	// user's namespace maps 1000 and 100000 to, never by other host ids.
	for name, inside := range map[string]int{"own/u1000": 1000, "own/u100000": 100000} {
		matches, _ := filepath.Glob(filepath.Join(root, "layers", "snapshots.v2", "sha256", "*", name))
		if len(matches) == 0 {
			t.Fatalf("no snapshot holds %s", name)
		}
		for _, m := range matches { // the base's, and a step's copy
			var st unix.Stat_t
			if err := unix.Lstat(m, &st); err != nil {
				t.Fatal(err)
			}
			if want := hostID(t, u, inside); st.Uid != want || st.Gid != want {
				t.Errorf("%s owned by host ids %d:%d, want %d (the user's mapping of %d)", m, st.Uid, st.Gid, want, inside)
			}
		}
	}
}

// hostID is the host id that u's rootless namespace maps the inside id to:
// u's own id for 0, then u's subordinate uid ranges one after the other.
func hostID(t *testing.T, u testutil.User, inside int) uint32 {
	t.Helper()
	if inside == 0 {
		return uint32(u.UID)
	}
	f, err := os.Open("/etc/subuid")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	next := 1
	s := bufio.NewScanner(f)
	for s.Scan() {
		p := strings.Split(s.Text(), ":")
		if len(p) != 3 || (p[0] != u.Name && p[0] != strconv.Itoa(u.UID)) {
			continue
		}
		start, _ := strconv.Atoi(p[1])
		count, _ := strconv.Atoi(p[2])
		if inside < next+count {
			return uint32(start + inside - next)
		}
		next += count
	}
	t.Fatalf("%s's subordinate uids do not reach %d", u.Name, inside)
	return 0
}

// TestRootlessFeatures runs every kind of step rootless: both networks,
// secret, cache and tmpfs mounts, two stages, copies from a stage and an
// image, the registry cache and a push with the user's own docker config,
// --load, the default state dir, and prune.
func TestRootlessFeatures(t *testing.T) {
	u := requireRootless(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{Auth: true})
	host := testutil.StartDockerd(t)
	sock := strings.TrimPrefix(host, "unix://")
	for _, p := range []string{filepath.Dir(sock), sock} { // the user's docker access, as the docker group gives it
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	dir := testutil.SharedDir(t)
	dockerConfig := filepath.Join(dir, "docker")
	run(t, nil, "cp", "-r", reg.DockerConfig, dockerConfig)
	run(t, nil, "chown", "-R", strconv.Itoa(u.UID), dockerConfig)
	secret := filepath.Join(dir, "token")
	if err := os.WriteFile(secret, []byte("s3cr3t-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(secret, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
	bb := shared(t, testutil.BusyboxLayout(t))
	hostIfaces, _ := os.ReadDir("/sys/class/net")
	ctx := sharedRecipe(t, `stages:
  - name: build
    from: oci-layout://`+bb+`:latest
    steps:
      - run: mkdir -p /out && echo built > /out/app && chown 1000:1000 /out/app && ls /sys/class/net | wc -l > /out/none
      - run: ls /sys/class/net | wc -l > /out/host
        network: host
      - run: wc -c < /run/secrets/token > /out/secret-len && echo run >> /cache/runs && touch /tmp/scratch
        mounts:
          - {type: secret, id: token, target: /run/secrets/token}
          - {type: cache, target: /cache}
          - {type: tmpfs, target: /tmp}
  - name: app
    from: oci-layout://`+bb+`:latest
    steps:
      - copy: /out/
        from: build
        to: /app/
      - copy: /bin/busybox
        from: oci-layout://`+bb+`:latest
        to: /copied/busybox
image:
  cmd: [cat, /app/app, /app/none, /app/host, /app/secret-len]
`, map[string]string{})
	env := []string{"SOURCE_DATE_EPOCH=1700000000", "DOCKER_CONFIG=" + dockerConfig, "DOCKER_HOST=" + host,
		"XDG_DATA_HOME=" + filepath.Join(dir, "xdg")}
	ref, cacheRepo := reg.Addr+"/rootless/app:1", reg.Addr+"/cache/rootless"
	a := mustBuildAs(t, u, env, "--secret", "id=token,src="+secret, "--cache-to", cacheRepo, "-t", ref, "--push", "--load", ctx)

	// The default state dir is $XDG_DATA_HOME/strata, the user's, rootless.
	root := filepath.Join(dir, "xdg", "strata")
	if kind, err := os.ReadFile(filepath.Join(root, "kind")); err != nil || string(kind) != "rootless\n" {
		t.Errorf("%s/kind = %q, %v; want rootless", root, kind, err)
	}
	out := run(t, []string{"DOCKER_HOST=" + host}, testutil.DockerPath, "run", "--rm", "--network", "none", ref)
	want := "built\n1\n" + strconv.Itoa(len(hostIfaces)) + "\n12\n"
	if out != want {
		t.Errorf("the loaded image printed %q, want %q (app, interfaces with network none and host, secret length)", out, want)
	}
	if len(hostIfaces) < 2 {
		t.Logf("the host has only %d network interfaces: network host is told from none by count only", len(hostIfaces))
	}
	for _, name := range builtNames(t, shared(t, exportLayout(t, ref, reg)), ref) {
		if strings.HasPrefix(name, "cache/") || strings.HasPrefix(name, "tmp/") || strings.HasPrefix(name, "run/secrets/") {
			t.Errorf("a layer holds %s, from a mount", name)
		}
	}

	// A second runner, another state dir: every step from the registry
	// cache, the same image; the cache mount of the first root unused.
	root2 := filepath.Join(dir, "root2")
	r := strataAs(t, u, env, "build", "--root", root2, "--progress", "plain", "--secret", "id=token,src="+secret,
		"--cache-from", cacheRepo, "-t", ref, ctx)
	if r.code != 0 {
		t.Fatalf("second runner: exit %d\n%s", r.code, r.stderr)
	}
	if b := strings.TrimSpace(r.stdout); b != a {
		t.Errorf("second runner built %s, first %s", b, a)
	}
	if strings.Contains(r.stderr, ": done ") {
		t.Errorf("the second runner ran steps despite the registry cache:\n%s", r.stderr)
	}

	// The cache mount persists across builds on one root.
	r = strataAs(t, u, env, "build", "--no-cache", "--secret", "id=token,src="+secret, ctx)
	if r.code != 0 {
		t.Fatalf("rebuild: exit %d\n%s", r.code, r.stderr)
	}
	caches, _ := filepath.Glob(filepath.Join(root, "cache", "mounts", "*", "data", "runs"))
	if len(caches) != 1 {
		t.Fatalf("cache mount data: %v", caches)
	}
	if runs, _ := os.ReadFile(caches[0]); string(runs) != "run\nrun\n" {
		t.Errorf("the cache mount holds %q after two runs", runs)
	}

	// prune, as the user, removes snapshots whose files subordinate ids own.
	r = strataAs(t, u, env, "prune", "--keep-bytes", "1")
	if r.code != 0 || !strings.Contains(r.stderr, "removed ") {
		t.Fatalf("prune: exit %d\n%s", r.code, r.stderr)
	}
	if snaps, _ := filepath.Glob(filepath.Join(root, "layers", "snapshots.v2", "sha256", "*")); len(snaps) != 0 {
		t.Errorf("prune left snapshots %v", snaps)
	}
}

// exportLayout copies ref from reg into an OCI layout with skopeo.
func exportLayout(t *testing.T, ref string, reg *testutil.Registry) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pulled")
	run(t, nil, "skopeo", "copy", "--src-tls-verify=false", "--src-authfile", filepath.Join(reg.DockerConfig, "config.json"),
		"docker://"+ref, "oci:"+dir+":"+ref)
	return dir
}

// TestRootlessAptExample builds examples/debian (apt-get over the host's
// network, apt's cache dirs as cache mounts) rootless on a debootstrapped
// Debian base, runs the image, and rebuilds it from the cache mounts.
func TestRootlessAptExample(t *testing.T) {
	u := requireRootless(t)
	base := shared(t, testutil.DebianLayout(t))
	recipe, err := os.ReadFile(filepath.Join(examplesDir(t), "debian", "strata.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	from := regexp.MustCompile(`(?m)^from: .*$`)
	if !from.Match(recipe) {
		t.Fatal("examples/debian has no from: line")
	}
	yaml := from.ReplaceAllString(string(recipe), "from: oci-layout://"+base+":"+testutil.DebianTag)
	ctx := sharedRecipe(t, yaml, map[string]string{})
	dir := testutil.SharedDir(t)
	root, out := filepath.Join(dir, "root"), filepath.Join(dir, "img.oci")
	r := strataAs(t, u, nil, "build", "--root", root, "--progress", "plain", "-t", "curl:1", "-o", "type=oci,dest="+out, ctx)
	if r.code != 0 {
		t.Fatalf("rootless build: exit %d\n%s", r.code, r.stderr)
	}
	if got := runBundle(t, out, "curl:1"); !strings.Contains(got, "Usage: curl") {
		t.Errorf("the image printed %q, want curl's help", got)
	}
	r = strataAs(t, u, nil, "build", "--root", root, "--progress", "plain", "--no-cache", ctx)
	if r.code != 0 {
		t.Fatalf("rebuild: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "Need to get 0 B") {
		t.Errorf("the rebuild fetched packages again; the apt cache mount was not reused:\n%s", r.stderr)
	}
}

// TestRootlessMissingPrerequisites sets up each broken prerequisite and
// checks the message: what is missing, how to fix it, nothing run.
func TestRootlessMissingPrerequisites(t *testing.T) {
	u := requireRootless(t)
	bb := shared(t, testutil.BusyboxLayout(t))
	hello := sharedRecipe(t, "from: oci-layout://"+bb+":latest\nsteps:\n  - run: echo hi > /hi\n", map[string]string{})

	check := func(t *testing.T, r result, code int, root string, want ...string) {
		t.Helper()
		if r.code != code {
			t.Errorf("exit %d, want %d\n%s", r.code, code, r.stderr)
		}
		for _, w := range want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
			}
		}
		if _, err := os.Stat(filepath.Join(root, "layers")); err == nil {
			t.Errorf("the build started: %s/layers exists", root)
		}
	}
	t.Run("newuidmap not installed", func(t *testing.T) {
		root := filepath.Join(testutil.SharedDir(t), "root")
		r := strataAs(t, u, []string{"PATH=" + testutil.SharedDir(t)}, "build", "--root", root, hello)
		check(t, r, 2, root, "cannot build rootless: newuidmap is not installed", "apt-get install uidmap")
	})
	t.Run("newuidmap not setuid", func(t *testing.T) {
		bin := testutil.SharedDir(t)
		run(t, nil, "cp", "/usr/bin/newuidmap", "/usr/bin/newgidmap", bin) // cp drops the setuid bit
		root := filepath.Join(testutil.SharedDir(t), "root")
		r := strataAs(t, u, []string{"PATH=" + bin + ":/usr/bin:/bin"}, "build", "--root", root, hello)
		check(t, r, 2, root, "newuidmap is neither setuid root nor given the capability to map ids", "chmod u+s")
	})
	t.Run("user namespaces disabled", func(t *testing.T) {
		// user.max_user_namespaces is per user namespace: set it to 0 in
		// one that maps every id to itself, and run strata in it as u.
		root := filepath.Join(testutil.SharedDir(t), "root")
		script := `echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --reuid=` + strconv.Itoa(u.UID) +
			` --regid=` + strconv.Itoa(u.GID) + ` --init-groups -- "$@"`
		cmd := exec.Command("sh", "-c", script, "sh", userBin(t), "build", "--root", root, hello)
		cmd.Env = []string{"HOME=" + u.Home, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Cloneflags:                 syscall.CLONE_NEWUSER,
			UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1<<32 - 1}},
			GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1<<32 - 1}},
			GidMappingsEnableSetgroups: true,
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("strata in a namespace without user namespaces: %v\n%s", err, stderr.String())
		}
		check(t, result{code: exit.ExitCode(), stderr: stderr.String()}, 2, root,
			"user namespaces are disabled for users other than root (sysctl user.max_user_namespaces = 0)",
			"sysctl -w user.max_user_namespaces=")
	})
	t.Run("overlay unavailable", func(t *testing.T) {
		// An overlay cannot be the upper dir of another: a state dir on
		// one fails the check the kernel's support would fail.
		d := testutil.SharedDir(t)
		for _, sub := range []string{"l", "u", "w", "m"} {
			if err := os.Mkdir(filepath.Join(d, sub), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		m := filepath.Join(d, "m")
		if err := unix.Mount("overlay", m, "overlay", 0, "lowerdir="+d+"/l,upperdir="+d+"/u,workdir="+d+"/w"); err != nil {
			t.Fatal(err)
		}
		defer unix.Unmount(m, unix.MNT_DETACH)
		if err := os.Chown(m, u.UID, u.GID); err != nil {
			t.Fatal(err)
		}
		root := filepath.Join(m, "root")
		r := strataAs(t, u, nil, "build", "--root", root, hello)
		check(t, r, 2, root, "overlay does not work in a user namespace with the state directory "+root,
			"rootless builds need Linux 5.11 or later, and a state directory on a local filesystem")
	})
	t.Run("read-only state dir", func(t *testing.T) {
		// The user's own dir on a filesystem mounted read-only: named
		// as such, not blamed on overlay or the kernel, for a state dir
		// there and for one to be made there.
		d := filepath.Join(testutil.SharedDir(t), "ro")
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatal(err)
		}
		defer unix.Unmount(d, unix.MNT_DETACH)
		if err := os.Mkdir(filepath.Join(d, "root"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(d, "root"), u.UID, u.GID); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("", d, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			t.Fatal(err)
		}
		for _, root := range []string{filepath.Join(d, "root"), filepath.Join(d, "root", "new")} {
			r := strataAs(t, u, nil, "build", "--root", root, hello)
			check(t, r, 2, root, "cannot build rootless: the state directory "+root+" is on a read-only filesystem",
				"choose a state directory on a writable filesystem with --root or STRATA_ROOT")
		}
	})
	t.Run("docker socket not allowed", func(t *testing.T) {
		// A daemon's socket, root's alone as docker.io makes it for the
		// docker group: --load says the user may not use it.
		sock := filepath.Join(testutil.SharedDir(t), "docker.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := os.Chmod(sock, 0o660); err != nil {
			t.Fatal(err)
		}
		root := filepath.Join(testutil.SharedDir(t), "root")
		r := strataAs(t, u, []string{"DOCKER_HOST=unix://" + sock}, "build", "--root", root, "-t", "x:1", "--load", hello)
		check(t, r, 2, root, "--load: may not use the docker daemon at unix://"+sock+" (DOCKER_HOST)",
			"permission denied", "a user of the socket's group (usually docker)")
	})
	t.Run("no subordinate ids", func(t *testing.T) {
		nosub := testutil.UserWithoutSubIDs(t)
		dir := testutil.SharedDir(t)
		root, out := filepath.Join(dir, "root"), filepath.Join(dir, "img.oci")
		// busybox's /home/app is owned by 1000: not representable.
		r := strataAs(t, nosub, nil, "build", "--root", root, "-o", "type=oci,dest="+out, hello)
		if r.code != 1 {
			t.Errorf("exit %d, want 1\n%s", r.code, r.stderr)
		}
		for _, w := range []string{
			"strata: warning: " + nosub.Name + " has no subordinate uids in /etc/subuid and no subordinate gids in /etc/subgid: only your own ids are mapped",
			"/home/app is owned by 1000:1000, which this rootless build cannot represent: it maps only your own ids",
		} {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
			}
		}
		checkSubIDFix(t, r.stderr, nosub.Name, 1000)
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("an output was written: %v", err)
		}
		// What only root owns builds; a copy owned by 1000 fails, naming
		// the first file: /opt, the parent the copy makes for it.
		ctx := sharedRecipe(t, "from: scratch\nsteps:\n  - copy: f\n    to: /f\n  - copy: f\n    to: /opt/f\n    owner: \"1000:1000\"\n",
			map[string]string{"f": "x\n"})
		r = strataAs(t, nosub, nil, "build", "--root", root, ctx)
		if r.code != 1 || !strings.Contains(r.stderr, "strata.yaml:5: /opt is owned by 1000:1000, which this rootless build cannot represent") {
			t.Errorf("copy owned by 1000 with own ids only: exit %d\n%s", r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "strata.yaml:3") {
			t.Errorf("the first copy, owned by root, did not build:\n%s", r.stderr)
		}
	})
}

// subIDRanges returns the ranges /etc/subuid and /etc/subgid list for any
// user, as [start, end) pairs.
func subIDRanges(t *testing.T) [][2]int {
	t.Helper()
	var out [][2]int
	for _, file := range []string{"/etc/subuid", "/etc/subgid"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			p := strings.Split(line, ":")
			if len(p) != 3 {
				continue
			}
			start, err1 := strconv.Atoi(p[1])
			count, err2 := strconv.Atoi(p[2])
			if err1 == nil && err2 == nil {
				out = append(out, [2]int{start, start + count})
			}
		}
	}
	return out
}

// checkSubIDFix checks the usermod command stderr suggests to give name
// subordinate ids: the same range of uids and gids, at least n ids and
// 65536, shared with no user in /etc/subuid or /etc/subgid.
func checkSubIDFix(t *testing.T, stderr, name string, n int) {
	t.Helper()
	m := regexp.MustCompile(`as root, run: usermod --add-subuids (\d+)-(\d+) --add-subgids (\d+)-(\d+) ` + regexp.QuoteMeta(name) + `\)`).FindStringSubmatch(stderr)
	if m == nil {
		t.Errorf("stderr suggests no usermod command for %s:\n%s", name, stderr)
		return
	}
	start, _ := strconv.Atoi(m[1])
	end, _ := strconv.Atoi(m[2])
	if m[1] != m[3] || m[2] != m[4] || end-start+1 < max(n, 65536) {
		t.Errorf("suggested uids %s-%s and gids %s-%s, want one range of %d ids at least", m[1], m[2], m[3], m[4], max(n, 65536))
	}
	for _, r := range subIDRanges(t) {
		if start < r[1] && r[0] <= end {
			t.Errorf("suggested range %d-%d overlaps the subordinate ids %d-%d of a user", start, end, r[0], r[1]-1)
		}
	}
}

// TestRootlessUnmappedOwnerFix: a file owned by an id past the user's
// subordinate ids fails the build, saying how many more ids it needs and
// a range to add that no user has (the user's own range would add
// nothing, another's would share ids).
func TestRootlessUnmappedOwnerFix(t *testing.T) {
	u := requireRootless(t)
	bb := shared(t, testutil.BusyboxLayout(t))
	have := 0 // u's subordinate uids and gids, the fewer
	for _, file := range []string{"/etc/subuid", "/etc/subgid"} {
		data, _ := os.ReadFile(file)
		n := 0
		for _, line := range strings.Split(string(data), "\n") {
			if p := strings.Split(line, ":"); len(p) == 3 && (p[0] == u.Name || p[0] == strconv.Itoa(u.UID)) {
				c, _ := strconv.Atoi(p[2])
				n += c
			}
		}
		if have == 0 || n < have {
			have = n
		}
	}
	id := have + 100000
	ctx := sharedRecipe(t, fmt.Sprintf("from: oci-layout://%s:latest\nsteps:\n  - file: /o\n    content: x\n    owner: \"%d:0\"\n", bb, id), map[string]string{})
	r := strataAs(t, u, nil, "build", "--root", filepath.Join(testutil.SharedDir(t), "root"), ctx)
	want := fmt.Sprintf("/o is owned by %d:0, which this rootless build cannot represent: it maps uids 0,1-%d", id, have)
	more := fmt.Sprintf("(give %s 100000 more subordinate ids in /etc/subuid and /etc/subgid (id %d needs %d in all); as root, run: usermod", u.Name, id, id)
	if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, more) {
		t.Errorf("exit %d, want 1 and stderr saying %q and %q:\n%s", r.code, want, more, r.stderr)
	}
	checkSubIDFix(t, r.stderr, u.Name, 100000)
}

// TestRootlessStateDirNotWritable: a --root the user cannot write (root's,
// as a build as root leaves it), or cannot make, is refused before
// anything runs, naming its owner and the command, not blamed on the
// kernel.
func TestRootlessStateDirNotWritable(t *testing.T) {
	u := requireRootless(t)
	bb := shared(t, testutil.BusyboxLayout(t))
	hello := sharedRecipe(t, "from: oci-layout://"+bb+":latest\nsteps:\n  - run: echo hi > /hi\n", map[string]string{})
	roots := filepath.Join(testutil.SharedDir(t), "roots")
	if err := os.Mkdir(roots, 0o700); err != nil { // as root
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"build", "--root", roots, hello}, "cannot build rootless: the state directory " + roots + " is not writable by " + u.Name + " (it is root's, drwx------)"},
		{[]string{"build", "--root", filepath.Join(roots, "a", "b"), hello}, "cannot build rootless: the state directory " + filepath.Join(roots, "a", "b") +
			" cannot be made: " + roots + " is not writable by " + u.Name + " (it is root's, drwx------)"},
		{[]string{"prune", "--root", roots}, "cannot prune rootless: the state directory " + roots + " is not writable by " + u.Name},
	} {
		r := strataAs(t, u, nil, c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, "--root or STRATA_ROOT") ||
			strings.Contains(r.stderr, "overlay") {
			t.Errorf("strata %s: exit %d, want 2 and stderr saying %q and what to do:\n%s", strings.Join(c.args, " "), r.code, c.want, r.stderr)
		}
	}
	if des, _ := os.ReadDir(roots); len(des) != 0 {
		t.Errorf("%s holds %d entries: something ran", roots, len(des))
	}
}

// TestRootlessPruneAll: a rootless state dir holds files subordinate ids
// own, which the user cannot remove; prune --keep-bytes 0 keeps no entry
// or cache mount, and prune --all empties it, after which the user's own
// rm -rf removes it, as a CI job's clean-up of its workspace does.
func TestRootlessPruneAll(t *testing.T) {
	u := requireRootless(t)
	bb := shared(t, testutil.BusyboxLayout(t))
	ctx := sharedRecipe(t, "from: oci-layout://"+bb+`:latest
steps:
  - copy: f
    to: /o/p/f
    owner: "1000:1000"
  - run: mkdir -p /c/d && touch /c/d/x && chown -R 2000:2000 /c && chmod 700 /c/d && chown 5000 /etc/passwd && mkdir -m 000 /z
    mounts:
      - {type: cache, target: /c}
`, map[string]string{"f": "x\n"})
	ws := filepath.Join(testutil.SharedDir(t), "ws")
	if err := os.Mkdir(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(ws, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(ws, "state")
	foreign := func() []string { // what u does not own
		var out []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil {
				if fi, err := d.Info(); err == nil && fi.Sys().(*syscall.Stat_t).Uid != uint32(u.UID) {
					out = append(out, p)
				}
			}
			return nil
		})
		return out
	}
	mustBuildAs(t, u, nil, "--root", root, ctx)
	if len(foreign()) == 0 {
		t.Fatal("the build left no file owned by a subordinate id; the test proves nothing")
	}

	r := strataAs(t, u, nil, "prune", "--root", root, "--keep-bytes", "0")
	if r.code != 0 || !strings.Contains(r.stderr, "(kept 0)") || !strings.Contains(r.stderr, "the data of 1 cache mounts") {
		t.Errorf("prune --keep-bytes 0: exit %d, want every entry and the cache mount removed:\n%s", r.code, r.stderr)
	}
	if left := foreign(); len(left) != 0 {
		t.Errorf("prune --keep-bytes 0 left files subordinate ids own: %v", left)
	}

	mustBuildAs(t, u, nil, "--root", root, ctx)
	if r := strataAs(t, u, nil, "prune", "--root", root, "--all", "--keep-bytes", "1g"); r.code != 2 {
		t.Errorf("prune --all --keep-bytes 1g: exit %d, want 2\n%s", r.code, r.stderr)
	}
	r = strataAs(t, u, nil, "prune", "--root", root, "--all")
	if r.code != 0 || !strings.Contains(r.stderr, "(kept 0)") {
		t.Errorf("prune --all: exit %d\n%s", r.code, r.stderr)
	}
	if left := foreign(); len(left) != 0 {
		t.Errorf("prune --all left files subordinate ids own: %v", left)
	}
	for _, dir := range []string{"blobs", "cache/index", "cache/mounts", "layers/snapshots.v2/sha256"} {
		if des, _ := os.ReadDir(filepath.Join(root, dir)); len(des) > 0 && (dir != "cache/index" || len(des) > 1 || des[0].Name() != "steps") {
			t.Errorf("prune --all left %d entries in %s", len(des), dir)
		}
	}
	if r, err := runCmd(u.Command(nil, "rm", "-rf", root)); err != nil || r.code != 0 {
		t.Fatalf("rm -rf of the state dir as %s: %v, exit %d\n%s", u.Name, err, r.code, r.stderr)
	}
	if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the state dir is still there: %v", err)
	}

	// rm -rf first (a workspace clean-up that knew nothing of prune)
	// leaves the snapshots, without cache/ when no cache mount kept it:
	// prune --all still removes them.
	ctx = sharedRecipe(t, "from: oci-layout://"+bb+":latest\nsteps:\n  - copy: f\n    to: /o/p/f\n    owner: \"1000:1000\"\n", map[string]string{"f": "x\n"})
	mustBuildAs(t, u, nil, "--root", root, ctx)
	if r, err := runCmd(u.Command(nil, "rm", "-rf", root)); err != nil || r.code == 0 {
		t.Fatalf("rm -rf of a state dir before prune --all: %v, exit %d; want it refused", err, r.code)
	}
	if _, err := os.Stat(filepath.Join(root, "cache")); err == nil {
		t.Logf("rm -rf left %s/cache", root)
	}
	if r := strataAs(t, u, nil, "prune", "--root", root, "--all"); r.code != 0 {
		t.Errorf("prune --all of what rm -rf left: exit %d\n%s", r.code, r.stderr)
	}
	if r, err := runCmd(u.Command(nil, "rm", "-rf", root)); err != nil || r.code != 0 {
		t.Errorf("rm -rf after prune --all of what an rm -rf left: %v, exit %d\n%s", err, r.code, r.stderr)
	}
}

// TestRootlessInterruptedBuildLeavesNothing stops a rootless build with
// SIGINT or SIGHUP, sent to the process the user started (which passes it
// on to its copy in the user namespace), while a step runs: strata exits
// non-zero within seconds, writes no output, and leaves no container,
// mount point or step process.
// With group, the signal goes to the build's whole process group, as a
// terminal sends ^C: the copy gets it twice, from the terminal and from
// its parent, at once. Started with SIGINT ignored (a script's background
// job), strata still stops on it, as a rootful build does.
func TestRootlessInterruptedBuildLeavesNothing(t *testing.T) {
	u := requireRootless(t)
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) { testRootlessSignalledBuild(t, u, sig, false, false) })
	}
	t.Run("interrupt to the group", func(t *testing.T) { testRootlessSignalledBuild(t, u, os.Interrupt, true, false) })
	t.Run("interrupt, started ignored", func(t *testing.T) { testRootlessSignalledBuild(t, u, os.Interrupt, false, true) })
}

func testRootlessSignalledBuild(t *testing.T, u testutil.User, sig os.Signal, group, ignored bool) {
	bb := shared(t, testutil.BusyboxLayout(t))
	ctx := sharedRecipe(t, "from: oci-layout://"+bb+":latest\nsteps:\n  - run: echo step-$((1+1))-running; sleep 300\n", map[string]string{})
	dir := testutil.SharedDir(t)
	root, out := filepath.Join(dir, "root"), filepath.Join(dir, "img.oci")
	cmd := u.Command(nil, userBin(t), "build", "--root", root, "--progress", "plain", "-o", "type=oci,dest="+out, ctx)
	if ignored { // sh's exec keeps the ignored signal, as a background job's
		cmd = u.Command(nil, "/bin/sh", "-c", `trap "" INT; exec "$0" "$@"`, userBin(t), "build", "--root", root, "--progress", "plain", "-o", "type=oci,dest="+out, ctx)
	}
	var stderr string
	if group {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		buf, pr := startUntil(t, cmd, "step-2-running")
		if err := syscall.Kill(-cmd.Process.Pid, sig.(syscall.Signal)); err != nil {
			t.Fatal(err)
		}
		io.Copy(buf, pr)
		if err := cmd.Wait(); err == nil {
			t.Fatalf("interrupted build succeeded\n%s", buf)
		}
		stderr = buf.String()
		if !strings.Contains(stderr, "strata: interrupted:") {
			t.Errorf("the build did not stop cleanly (killed by the signal's second copy?):\n%s", stderr)
		}
	} else {
		stderr = signalBuild(t, cmd, sig, "step-2-running", out)
	}
	t.Logf("strata's stderr:\n%s", stderr)
	assertNoLeftovers(t, root)
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		if data, _ := os.ReadFile(c); strings.Contains(string(data), "step-$((1+1))-running") {
			t.Errorf("the interrupted build's step still runs: %s", filepath.Dir(c))
		}
	}
}

// TestRootlessKilledBuildIsCleanedUp kills a rootless build with SIGKILL
// while a step runs as a user other than root (an id only the user's
// namespace maps): the next build stops and removes the step the killed
// one left running, and says so.
func TestRootlessKilledBuildIsCleanedUp(t *testing.T) {
	u := requireRootless(t)
	bb := shared(t, testutil.BusyboxLayout(t))
	ctx := sharedRecipe(t, "from: oci-layout://"+bb+":latest\nuser: app\nsteps:\n  - run: echo rootless-killed-$((1+1))-running; sleep 300\n", map[string]string{})
	root := filepath.Join(testutil.SharedDir(t), "root")
	t.Cleanup(func() { killContainers(u, filepath.Join(root, "runc")) }) // should the test fail
	cmd := u.Command(nil, userBin(t), "build", "--root", root, "--progress", "plain", ctx)
	_, pr := startUntil(t, cmd, "rootless-killed-2-running")
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	pr.Close()
	entries, _ := os.ReadDir(filepath.Join(root, "runc"))
	if len(entries) == 0 {
		t.Fatal("the killed build left no container; the test proves nothing")
	}
	// The build in the namespace dies of its parent's death a moment
	// later: the next build would take it for a live one until then.
	owner := strings.Split(entries[0].Name(), "-")[1] // PID.NS
	if pid, _ := strconv.Atoi(strings.Split(owner, ".")[0]); pid > 0 {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if syscall.Kill(pid, 0) != nil {
				break
			}
		}
	}

	hello := sharedRecipe(t, "from: oci-layout://"+bb+":latest\nsteps:\n  - run: echo hi > /hi\n", map[string]string{})
	r := strataAs(t, u, nil, "build", "--root", root, "--progress", "plain", hello)
	if r.code != 0 {
		t.Fatalf("the next build: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "of a killed build") {
		t.Errorf("the next build says nothing of the killed one:\n%s", r.stderr)
	}
	assertNoLeftovers(t, root)
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, c := range cmdlines {
			if data, _ := os.ReadFile(c); strings.Contains(string(data), "rootless-killed-$((1+1))-running") {
				left = append(left, filepath.Dir(c))
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the killed build's step still runs: %v", left)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// killContainers kills, as u, the containers left in the runtime state
// dir stateDir.
func killContainers(u testutil.User, stateDir string) {
	entries, _ := os.ReadDir(stateDir)
	for _, e := range entries {
		if e.IsDir() && !strings.HasSuffix(e.Name(), ".bundle") {
			_ = u.Command(nil, "runc", "--root", stateDir, "kill", e.Name(), "KILL").Run()
		}
	}
}

// TestRootlessUserCertsD: a rootless build trusts the CA its user put in
// ~/.config/containers/certs.d (as skopeo and podman do), and without it
// says to put it there, not under /etc, which she cannot write: the build
// runs as root in its user namespace, but for her.
func TestRootlessUserCertsD(t *testing.T) {
	u := requireRootless(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true})
	ref := reg.Addr + "/demo/hello:1"
	mustBuild(t, []string{"SSL_CERT_FILE=" + reg.CAFile}, "--root", t.TempDir(), "--build-arg", busyboxBase(t), "-t", ref, "--push",
		filepath.Join(examplesDir(t), "hello"))
	home := filepath.Join(testutil.SharedDir(t), "home")
	ctx := sharedRecipe(t, "from: "+ref+"\nsteps:\n  - run: cat /hello.txt > /copied.txt\n", map[string]string{})
	env := []string{"HOME=" + home, "SSL_CERT_FILE=", "SSL_CERT_DIR=", "XDG_CONFIG_HOME="}
	userDir := filepath.Join(home, ".config", "containers", "certs.d")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
	r := strataAs(t, u, env, "build", "--root", filepath.Join(home, "root"), ctx)
	if want := filepath.Join(userDir, reg.Addr, "ca.crt"); r.code != 1 || !strings.Contains(r.stderr, "put the registry's CA certificate in "+want) {
		t.Errorf("without the CA: exit %d, want 1 and the user's own certs.d (%s) named:\n%s", r.code, want, r.stderr)
	}
	reg.WriteCertsD(t, userDir)
	if err := filepath.WalkDir(filepath.Join(home, ".config"), func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, u.UID, u.GID)
	}); err != nil {
		t.Fatal(err)
	}
	mustBuildAs(t, u, env, "--root", filepath.Join(home, "root"), ctx)
}
