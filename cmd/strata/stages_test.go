package main_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/stratabuild/strata/internal/testutil"
)

// TestMultistageExample builds examples/multistage and runs the result.
func TestMultistageExample(t *testing.T) {
	requireBuildTools(t)
	out := filepath.Join(t.TempDir(), "ms.oci")
	mustBuild(t, nil, "--root", t.TempDir(), "--build-arg", busyboxBase(t), "-t", "ms:1",
		"-o", "type=oci,dest="+out, filepath.Join(examplesDir(t), "multistage"))
	got := runBundle(t, out, "ms:1")
	if !strings.Contains(got, "hello from a multi-stage build (version 1.2.0)") {
		t.Errorf("the image printed %q", got)
	}
	// Only the last stage's layers are in the image: busybox plus the two
	// copies.
	if ls, err := layoutImage(t, out, "ms:1").Layers(); err != nil || len(ls) != 3 {
		t.Errorf("image has %d layers (%v), want 3", len(ls), err)
	}

	// --target builds what the target needs, nothing else.
	r := strata(t, nil, "build", "--root", t.TempDir(), "--build-arg", busyboxBase(t), "--target", "build",
		filepath.Join(examplesDir(t), "multistage"))
	if r.code != 0 {
		t.Fatalf("--target build: exit %d\n%s", r.code, r.stderr)
	}
	for _, stage := range []string{"[docs ", "[app "} {
		if strings.Contains(r.stderr, stage) {
			t.Errorf("--target build built stage %s:\n%s", stage, r.stderr)
		}
	}
}

// TestCopyFromStageKeepsEverything copies files carrying xattrs, a file
// capability, a setuid bit, an owner and a hardlink from one stage into
// a scratch stage; umoci must find them all.
func TestCopyFromStageKeepsEverything(t *testing.T) {
	requireBuildTools(t)
	base := fidelityBase(t)
	ctx := writeRecipe(t, `stages:
  - name: src
    from: oci-layout://`+base+`:fid
    steps:
      - run: chown 1234:5678 /fid/target && chmod 4755 /fid/capfile && ln /fid/target /fid/link
  - name: out
    from: scratch
    steps:
      - copy: /fid/
        from: src
        to: /copied/
      - copy: /bin/busybox
        from: oci-layout://`+base+`:fid
        to: /bin/busybox
`, map[string]string{})
	out := filepath.Join(t.TempDir(), "img.oci")
	mustBuild(t, nil, "--root", t.TempDir(), "-t", "cf:1", "-o", "type=oci,dest="+out, ctx)
	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, nil, "umoci", "unpack", "--image", out+":cf:1", bundle)
	rootfs := filepath.Join(bundle, "rootfs")

	capfile := filepath.Join(rootfs, "copied/capfile")
	fi, err := os.Lstat(capfile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("capfile mode %v, want setuid 0755", fi.Mode())
	}
	for name, want := range map[string][]byte{"user.note": []byte("hello"), "security.capability": capNetBindService} {
		got := make([]byte, 256)
		n, err := unix.Lgetxattr(capfile, name, got)
		if err != nil || !bytes.Equal(got[:n], want) {
			t.Errorf("capfile xattr %s = %q (%v), want %q", name, got[:max(n, 0)], err, want)
		}
	}
	a, errA := os.Lstat(filepath.Join(rootfs, "copied/target"))
	b, errB := os.Lstat(filepath.Join(rootfs, "copied/link"))
	if errA != nil || errB != nil {
		t.Fatalf("target or link missing: %v %v", errA, errB)
	}
	sa, sb := a.Sys().(*syscall.Stat_t), b.Sys().(*syscall.Stat_t)
	if sa.Ino != sb.Ino {
		t.Errorf("copied/link and copied/target are different inodes: the hardlink was lost")
	}
	if sa.Uid != 1234 || sa.Gid != 5678 {
		t.Errorf("copied/target owner %d:%d, want 1234:5678", sa.Uid, sa.Gid)
	}
	if d := cmp.Diff([]string{"a", "b", "sub"}, listDir(t, filepath.Join(rootfs, "copied/dir"))); d != "" {
		t.Errorf("copied/dir (-want +got):\n%s", d)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "bin/busybox")); err != nil {
		t.Errorf("copy from an image: %v", err)
	}
}

// TestSecretNeverStored mounts a secret into a step and then searches
// everything the build wrote — every blob decompressed, the config, the
// state dir, the metadata file and the progress output — for its bytes.
func TestSecretNeverStored(t *testing.T) {
	requireBuildTools(t)
	secret := "s3cr3t-value-" + filepath.Base(t.TempDir())
	secretFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := writeRecipe(t, `from: ${BASE}
args: {BASE: scratch}
steps:
  - run: |
      test "$(stat -c %a /run/secrets/token)" = 400
      wc -c < /run/secrets/token > /token.len
      cat /run/secrets/token
      cp /run/secrets/token /tmp/copy
    mounts:
      - type: secret
        id: token
        target: /run/secrets/token
      - type: tmpfs
        target: /tmp
  - run: ls -la / /tmp > /listing
`, map[string]string{})
	root, out, meta := t.TempDir(), filepath.Join(t.TempDir(), "img.oci"), filepath.Join(t.TempDir(), "meta.json")
	r := strata(t, nil, "build", "--root", root, "--build-arg", busyboxBase(t), "--secret", "id=token,src="+secretFile,
		"--metadata-file", meta, "-t", "s:1", "-o", "type=oci,dest="+out, ctx)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "****") {
		t.Errorf("the step's output of the secret was not redacted:\n%s", r.stderr)
	}
	hits := searchTree(t, []byte(secret), out, root, meta)
	if strings.Contains(r.stderr+r.stdout, secret) {
		hits = append(hits, "progress output")
	}
	for _, h := range hits {
		t.Errorf("the secret's bytes are in %s", h)
	}
	// The secret was really there for the step, and left no stub.
	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, nil, "umoci", "unpack", "--image", out+":s:1", bundle)
	if data, _ := os.ReadFile(filepath.Join(bundle, "rootfs/token.len")); strings.TrimSpace(string(data)) != strconv.Itoa(len(secret)+1) {
		t.Errorf("token.len = %q, want %d", data, len(secret)+1)
	}
	for _, p := range []string{"run/secrets/token", "run/secrets", "tmp/copy"} {
		if _, err := os.Lstat(filepath.Join(bundle, "rootfs", p)); err == nil {
			t.Errorf("/%s is in the image", p)
		}
	}

	// Without --secret the build stops before running anything, naming the step.
	r = strata(t, nil, "build", "--root", t.TempDir(), "--build-arg", busyboxBase(t), ctx)
	if r.code != 2 || !strings.Contains(r.stderr, `strata.yaml:10:9: step 1 needs secret "token"`) {
		t.Errorf("missing secret: exit %d\n%s", r.code, r.stderr)
	}
}

// searchTree looks for needle in every file under the given paths,
// decompressing gzip and zstd blobs; it returns the files that hold it.
func searchTree(t *testing.T, needle []byte, roots ...string) []string {
	t.Helper()
	var hits []string
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, content := range decoded(data) {
				if bytes.Contains(content, needle) {
					hits = append(hits, p)
					break
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return hits
}

// decoded returns data, its decompression if it is gzip or zstd, and the
// contents of the files of a tar among those.
func decoded(data []byte) [][]byte {
	out := [][]byte{data}
	var plain []byte
	if zr, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
		plain, _ = io.ReadAll(zr)
	} else if zr, err := zstd.NewReader(bytes.NewReader(data)); err == nil {
		plain, _ = io.ReadAll(zr)
		zr.Close()
	}
	if plain != nil {
		out = append(out, plain)
	}
	return out
}

// TestIndependentStagesRunConcurrently builds two stages that do not
// depend on each other, a few seconds each, and one that copies from both.
// The two must overlap in time; the times are logged, not asserted.
func TestIndependentStagesRunConcurrently(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, `args: {BASE: scratch}
stages:
  - name: left
    from: ${BASE}
    steps:
      - run: sleep 3; echo left > /left
  - name: right
    from: ${BASE}
    steps:
      - run: sleep 3; echo right > /right
  - name: both
    from: ${BASE}
    steps:
      - copy: /left
        from: left
        to: /left
      - copy: /right
        from: right
        to: /right
`, map[string]string{})
	start := time.Now()
	r := strata(t, nil, "build", "--root", t.TempDir(), "--build-arg", busyboxBase(t), "--progress", "json", ctx)
	total := time.Since(start)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	type span struct{ start, end time.Time }
	spans := map[string]*span{}
	sc := bufio.NewScanner(strings.NewReader(r.stderr))
	for sc.Scan() {
		var e struct {
			Kind, Stage, Action string
			Time                time.Time
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Action != "run" {
			continue
		}
		if spans[e.Stage] == nil {
			spans[e.Stage] = &span{}
		}
		switch e.Kind {
		case "start":
			spans[e.Stage].start = e.Time
		case "done":
			spans[e.Stage].end = e.Time
		}
	}
	l, rt := spans["left"], spans["right"]
	if l == nil || rt == nil || l.end.IsZero() || rt.end.IsZero() {
		t.Fatalf("no run events for both stages:\n%s", r.stderr)
	}
	t.Logf("left ran %s, right ran %s, whole build %s", l.end.Sub(l.start), rt.end.Sub(rt.start), total)
	if !l.start.Before(rt.end) || !rt.start.Before(l.end) {
		t.Errorf("the independent stages ran one after the other: left %v–%v, right %v–%v", l.start, l.end, rt.start, rt.end)
	}
}

// TestAptWithCacheMount installs a package with apt-get on a debootstrapped
// Debian base over the host's network, with /var/cache/apt as a cache
// mount; a second build whose later step changed downloads nothing again.
func TestAptWithCacheMount(t *testing.T) {
	requireBuildTools(t)
	base := testutil.DebianLayout(t)
	recipe := func(last string) string {
		return `from: oci-layout://` + base + `:` + testutil.DebianTag + `
steps:
  - run: |
      rm -f /etc/apt/apt.conf.d/docker-clean
      echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' > /etc/apt/apt.conf.d/keep-cache
      apt-get update -q && apt-get install -y -q --no-install-recommends hello
    network: host
    env: {DEBIAN_FRONTEND: noninteractive}
    mounts:
      - type: cache
        target: /var/cache/apt
  - run: ` + last + `
image:
  cmd: [/usr/bin/hello]
`
	}
	root := t.TempDir()
	ctx1 := writeRecipe(t, recipe("hello > /greeting"), map[string]string{})
	r := strata(t, nil, "build", "--root", root, ctx1)
	if r.code != 0 {
		t.Fatalf("first build: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "Get:") || !strings.Contains(r.stderr, "hello") {
		t.Errorf("first build downloaded nothing?\n%s", r.stderr)
	}
	ctx2 := writeRecipe(t, recipe("hello -g bonjour > /greeting"), map[string]string{})
	// --no-cache: the apt step runs again, on the cache mount the first filled.
	r = strata(t, nil, "build", "--root", root, "--no-cache", ctx2)
	if r.code != 0 {
		t.Fatalf("second build: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "Need to get 0 B") {
		t.Errorf("the second build fetched the package again; the apt cache mount was not reused:\n%s", r.stderr)
	}
	// The cache mount's contents never reach a layer.
	out := filepath.Join(t.TempDir(), "img.oci")
	mustBuild(t, nil, "--root", root, "-t", "apt:1", "-o", "type=oci,dest="+out, ctx2)
	for _, h := range builtNames(t, out, "apt:1") {
		if strings.HasPrefix(h, "var/cache/apt/") && h != "var/cache/apt/" {
			t.Errorf("layer holds %s from the cache mount", h)
		}
	}
}

// builtNames lists the entries of every layer strata added (all but the
// first) of an image in a layout.
func builtNames(t *testing.T, dir, ref string) []string {
	t.Helper()
	ls, err := layoutImage(t, dir, ref).Layers()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range ls[1:] {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			names = append(names, strings.TrimPrefix(h.Name, "./"))
		}
		rc.Close()
	}
	return names
}

// TestUnneededStageNotChecked: a missing context file in a stage the
// target does not need fails neither the build nor --target (buildx skips
// such stages); validate, which checks the whole recipe, reports it.
func TestUnneededStageNotChecked(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, `stages:
  - name: unused
    from: scratch
    steps:
      - copy: missing.txt
        to: /m
  - name: final
    from: scratch
    steps:
      - file: /f
        content: f
`, map[string]string{})
	for _, args := range [][]string{{}, {"--target", "final"}} {
		args = append([]string{"build", "--root", t.TempDir()}, append(args, ctx)...)
		if r := strata(t, nil, args...); r.code != 0 {
			t.Errorf("%q: exit %d\n%s", args, r.code, r.stderr)
		}
	}
	r := strata(t, nil, "validate", ctx)
	if r.code == 0 || !strings.Contains(r.stderr+r.stdout, `copy source "missing.txt" does not exist`) {
		t.Errorf("validate: exit %d, want it to report missing.txt:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestStateRootInsideTheContext: --root inside the build context (a CI
// cache must live in the project dir) is left out of copies of the
// context and of their keys: copy . neither copies the build's own state
// into itself nor misses the cache because the state changed.
func TestStateRootInsideTheContext(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, "from: scratch\nsteps:\n  - copy: .\n    to: /src/\n", map[string]string{"f.txt": "f"})
	root, out := filepath.Join(ctx, ".cache", "strata"), filepath.Join(t.TempDir(), "o")
	mustBuild(t, nil, "--root", root, "-t", "x:1", "-o", "type=oci,dest="+out, ctx)
	ls, err := layoutImage(t, out, "x:1").Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("%d layers, %v", len(ls), err)
	}
	rc, err := ls[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	for tr := tar.NewReader(rc); ; {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, strings.TrimSuffix(h.Name, "/"))
	}
	// .cache stays, empty, as with .cache/strata in the ignore file.
	if want := []string{"src", "src/.cache", "src/f.txt", "src/strata.yaml"}; !cmp.Equal(want, names) {
		t.Errorf("layer has %q, want %q", names, want)
	}
	if r := strata(t, nil, "build", "--root", root, ctx); r.code != 0 || !strings.Contains(r.stderr, "copy: cached") {
		t.Errorf("second build: exit %d, want the copy cached:\n%s", r.code, r.stderr)
	}
}

// TestStagesShareTheirBase: two stages on one registry base fetch each of
// its layer blobs once.
func TestStagesShareTheirBase(t *testing.T) {
	requireBuildTools(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	base := reg.Addr + "/shared/base:1"
	run(t, nil, "skopeo", "copy", "--dest-tls-verify=false", "oci:"+testutil.BusyboxLayout(t)+":"+testutil.BusyboxTag, "docker://"+base)
	ctx := writeRecipe(t, `stages:
  - name: a
    from: `+base+`
    steps: [{file: /a, content: a}]
  - name: b
    from: `+base+`
    steps:
      - file: /b
        content: b
      - copy: /a
        from: a
        to: /a
`, map[string]string{})
	mustBuild(t, nil, "--root", t.TempDir(), ctx)
	log, err := os.ReadFile(reg.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	gets := map[string]int{}
	for _, line := range strings.Split(string(log), "\n") {
		if i := strings.Index(line, "GET /v2/shared/base/blobs/sha256:"); i >= 0 && !strings.Contains(line, "HEAD") {
			gets[strings.Fields(line[i:])[1]]++
		}
	}
	if len(gets) == 0 {
		t.Fatalf("no blob fetched, per the registry's log:\n%s", log)
	}
	for blob, n := range gets {
		if n > 1 {
			t.Errorf("%s fetched %d times", blob, n)
		}
	}
}
