package main_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/stratabuild/strata/internal/testutil"
)

// TestOutputIntoContextRefusedBeforeAnyStep: -o type=oci,dest=<the build
// context> is refused before anything runs, and the context is untouched.
func TestOutputIntoContextRefusedBeforeAnyStep(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: touch /ran\n", map[string]string{"precious.txt": "precious\n"})
	root := t.TempDir()
	r := strata(t, nil, "build", "--root", root, "--build-arg", busyboxBase(t), "-o", "type=oci,dest="+ctx, ctx)
	if r.code != 2 || !strings.Contains(r.stderr, "is not empty and is not an OCI layout") {
		t.Errorf("exit %d, want 2 and the reason:\n%s", r.code, r.stderr)
	}
	if data, err := os.ReadFile(filepath.Join(ctx, "precious.txt")); err != nil || string(data) != "precious\n" {
		t.Errorf("the context lost precious.txt: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ctx, "strata.yaml")); err != nil {
		t.Errorf("the context lost its recipe: %v", err)
	}
	if strings.Contains(r.stderr, "touch /ran") {
		t.Errorf("a step ran before the output was checked:\n%s", r.stderr)
	}
}

// TestBadInputsRefusedAtOnce: a FIFO as recipe and /dev/zero as recipe or
// secret are refused at once, in bounded memory, exit 2.
func TestBadInputsRefusedAtOnce(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: \"true\"\n", map[string]string{})
	fifo := filepath.Join(t.TempDir(), "f.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"fifo recipe", []string{"validate", "-f", fifo}, "named pipe (FIFO)"},
		{"dev zero recipe", []string{"validate", "-f", "/dev/zero"}, "character device"},
		{"dev zero secret", []string{"build", "--root", t.TempDir(), "--secret", "id=s,src=/dev/zero", ctx}, "character device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := strata(t, nil, tc.args...)
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %s", took)
			}
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, want 2 and %q:\n%s", r.code, tc.want, r.stderr)
			}
		})
	}
}

// TestFullDiskNamedAtCommit: a state root that fills up while a layer is
// committed gives "no space left on device", not a pipe error, and names
// the step whose layer did not fit.
func TestFullDiskNamedAtCommit(t *testing.T) {
	requireBuildTools(t)
	root := t.TempDir()
	if err := syscall.Mount("tmpfs", root, "tmpfs", 0, "size=48m"); err != nil {
		t.Fatalf("mounting a small tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(root, syscall.MNT_DETACH) })
	// 30 MiB of random data fits in the upper dir; its compressed blob
	// (as big) does not fit beside it.
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: head -c 31457280 /dev/urandom > /big\n", map[string]string{})
	r := strata(t, nil, "build", "--root", root, "--build-arg", busyboxBase(t), ctx)
	if r.code != 1 || !strings.Contains(r.stderr, "no space left on device") || !strings.Contains(r.stderr, "compressing the layer of "+filepath.Join(ctx, "strata.yaml")+":4") {
		t.Errorf("exit %d, want 1 naming the full disk and the step:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "closed pipe") {
		t.Errorf("the error blames a pipe:\n%s", r.stderr)
	}
}

// TestFullDiskLeavesNoSnapshot: on a state root that has a cache (so a
// step's snapshot is stored before its layer is compressed), a layer that
// does not fit while compressed leaves no snapshot behind, though the
// step after it was recorded, and a retry once there is room builds.
func TestFullDiskLeavesNoSnapshot(t *testing.T) {
	requireBuildTools(t)
	root := t.TempDir()
	if err := syscall.Mount("tmpfs", root, "tmpfs", 0, "size=48m"); err != nil {
		t.Fatalf("mounting a small tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(root, syscall.MNT_DETACH) })
	snapshots := func() []string {
		des, _ := os.ReadDir(filepath.Join(root, "layers", "snapshots.v2", "sha256"))
		var names []string
		for _, de := range des {
			names = append(names, de.Name())
		}
		return names
	}
	small := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: echo a > /a\n", map[string]string{})
	if r := strata(t, nil, "build", "--root", root, "--build-arg", busyboxBase(t), small); r.code != 0 {
		t.Fatalf("the first build: exit %d\n%s", r.code, r.stderr)
	}
	before := snapshots()
	// 30 MiB of random data fits in the upper dir; its compressed blob
	// (as big) does not fit beside it. The step after it is recorded,
	// its entry listing the big one's diffID below its layer.
	big := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: head -c 31457280 /dev/urandom > /big\n  - run: echo after > /after\n", map[string]string{})
	r := strata(t, nil, "build", "--root", root, "--build-arg", busyboxBase(t), big)
	// The blob fills the disk while the next step runs: that step's
	// write or the compression fails first.
	if r.code != 1 || !strings.Contains(strings.ToLower(r.stderr), "no space left on device") {
		t.Fatalf("exit %d, want 1 naming the full disk:\n%s", r.code, r.stderr)
	}
	for _, d := range snapshots() {
		big := filepath.Join(root, "layers", "snapshots.v2", "sha256", d, "big")
		if _, err := os.Lstat(big); err == nil && !slices.Contains(before, d) {
			t.Errorf("the snapshot of the step whose layer did not fit is left: %s", big)
		}
	}
	if err := syscall.Mount("", root, "", syscall.MS_REMOUNT, "size=96m"); err != nil {
		t.Fatal(err)
	}
	if r := strata(t, nil, "build", "--root", root, "--build-arg", busyboxBase(t), big); r.code != 0 {
		t.Errorf("the retry with room: exit %d\n%s", r.code, r.stderr)
	}
}

// TestReadOnlyCacheToRefusedFirst: a --cache-to directory holding a cache
// on a filesystem since mounted read-only is refused before any step
// runs (exit 2), as an -o dest there is, not after the last step.
func TestReadOnlyCacheToRefusedFirst(t *testing.T) {
	requireBuildTools(t)
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mounting a small tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	cacheDir := filepath.Join(dir, "cache")
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: echo a > /a\n  - run: touch /ran\n", map[string]string{})
	root := t.TempDir()
	if r := strata(t, nil, "build", "--root", root, "--build-arg", busyboxBase(t), "--cache-to", "type=local,dest="+cacheDir, ctx); r.code != 0 {
		t.Fatalf("the first build: exit %d\n%s", r.code, r.stderr)
	}
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatal(err)
	}
	r := strata(t, nil, "build", "--root", root, "--no-cache", "--progress", "plain", "--build-arg", busyboxBase(t), "--cache-to", "type=local,dest="+cacheDir, ctx)
	want := "--cache-to: local cache " + cacheDir + ": cannot write in " + cacheDir
	if r.code != 2 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "read-only file system") || strings.Contains(r.stderr, "touch /ran") {
		t.Errorf("exit %d, want 2 and %q before any step:\n%s", r.code, want, r.stderr)
	}
}

// TestFullCacheToNamesTheStep: a --cache-to directory that fills up while
// a cached step's layer is copied there names the step and the export,
// not only the file that could not be written.
func TestFullCacheToNamesTheStep(t *testing.T) {
	requireBuildTools(t)
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mounting a small tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: head -c 3000000 /dev/urandom > /big\n", map[string]string{})
	root := t.TempDir()
	if r := strata(t, nil, "build", "--root", root, "--build-arg", busyboxBase(t), ctx); r.code != 0 {
		t.Fatalf("the first build: exit %d\n%s", r.code, r.stderr)
	}
	r := strata(t, nil, "build", "--root", root, "--build-arg", busyboxBase(t), "--cache-to", "type=local,dest="+filepath.Join(dir, "cache"), ctx)
	want := filepath.Join(ctx, "strata.yaml") + ":4: recording the cached step in --cache-to: writing local cache"
	if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "no space left on device") {
		t.Errorf("exit %d, want 1 and %q:\n%s", r.code, want, r.stderr)
	}
}

// TestBaseListingOneLayerTwice: a base whose manifest lists one layer
// twice (the classic docker builder made one empty layer blob for every
// step that changed nothing) builds, from a registry: the layer's one
// snapshot is mounted once, where it is topmost, and the image runs. The
// same base with another diff_id for the second entry is refused before
// any step.
func TestBaseListingOneLayerTwice(t *testing.T) {
	requireBuildTools(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	p, err := layout.FromPath(testutil.BusyboxLayout(t))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	busybox, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := busybox.Layers()
	if err != nil {
		t.Fatal(err)
	}
	push := func(repo string, edit func(cf *v1.ConfigFile)) string {
		img, err := mutate.AppendLayers(busybox, ls[0])
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		edit(cf)
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		ref := reg.Addr + "/" + repo + ":1"
		tag, err := name.NewTag(ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(tag, img); err != nil {
			t.Fatal(err)
		}
		return ref
	}
	recipe := "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: ls /bin | wc -l > /n\nimage:\n  cmd: [cat, /n]\n"
	ctx := writeRecipe(t, recipe, map[string]string{})

	root, out := t.TempDir(), filepath.Join(t.TempDir(), "out")
	r := strata(t, nil, "build", "--root", root, "--build-arg", "BASE="+push("twice/honest", func(*v1.ConfigFile) {}),
		"-t", "twice:1", "-o", "type=oci,dest="+out, ctx)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if got := strings.TrimSpace(runBundle(t, out, "twice:1")); got == "" || got == "0" {
		t.Errorf("the image printed %q, want the number of files in /bin", got)
	}
	assertNoLeftovers(t, root)

	other := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	r = strata(t, nil, "build", "--root", t.TempDir(), "--build-arg", "BASE="+push("twice/lying", func(cf *v1.ConfigFile) { cf.RootFS.DiffIDs[1] = other }), ctx)
	if r.code == 0 || !strings.Contains(r.stderr, "twice (layers 1 and 2) with diff_ids") || !strings.Contains(r.stderr, other.String()) {
		t.Errorf("exit %d, want a failure naming the second diff_id:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "ls /bin") {
		t.Errorf("a step ran on a base whose claims disagree:\n%s", r.stderr)
	}
}

// TestGlobToAFileName: a glob source copied to a file name (docker's
// COPY target/*.jar app.jar) copies the one file it matches there; once
// it matches two, the build is refused before anything runs, as is
// strata validate.
func TestGlobToAFileName(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - copy: build/libs/*.jar\n    to: /app.jar\n",
		map[string]string{"build/libs/app-1.0.jar": "jar one\n"})
	out := filepath.Join(t.TempDir(), "out")
	mustBuild(t, nil, "--root", t.TempDir(), "-t", "app:1", "-o", "type=oci,dest="+out, ctx)
	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, nil, "umoci", "unpack", "--image", out+":app:1", bundle)
	if b, err := os.ReadFile(filepath.Join(bundle, "rootfs", "app.jar")); err != nil || string(b) != "jar one\n" {
		t.Errorf("/app.jar = %q, %v; want the one jar", b, err)
	}

	if err := os.WriteFile(filepath.Join(ctx, "build/libs/app-2.0.jar"), []byte("jar two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := `copy source "build/libs/*.jar" matches 2 files: a copy of several needs a destination dir ending in /, not "/app.jar"`
	for _, args := range [][]string{{"build", "--root", t.TempDir(), ctx}, {"validate", ctx}} {
		r := strata(t, nil, args...)
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("strata %s with two jars: exit %d, want a failure saying\n%s\ngot:\n%s", args[0], r.code, want, r.stderr)
		}
	}
}
