package main_test

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/internal/testutil"
)

// TestRegistryCacheSharedByRunners simulates two CI runners — two state
// roots — sharing one registry cache: the second builds nothing, downloads
// no layer blob, and pushes the same image.
func TestRegistryCacheSharedByRunners(t *testing.T) {
	requireBuildTools(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	bb := testutil.BusyboxLayout(t)
	run(t, nil, "skopeo", "copy", "--dest-tls-verify=false", "oci:"+bb+":"+testutil.BusyboxTag,
		"docker://"+reg.Addr+"/library/busybox:latest")
	env := []string{"SOURCE_DATE_EPOCH=1700000000", "DOCKER_CONFIG=" + t.TempDir()}
	base := "BASE=" + reg.Addr + "/library/busybox:latest"
	cacheRepo := reg.Addr + "/cache/hello"
	hello := filepath.Join(examplesDir(t), "hello")

	a := mustBuild(t, env, "--root", t.TempDir(), "--build-arg", base, "--cache-to", cacheRepo,
		"-t", reg.Addr+"/app/hello:a", "--push", hello)

	var manifest struct{ Layers []struct{ Digest string } }
	raw := run(t, nil, "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+reg.Addr+"/app/hello:a")
	if err := json.Unmarshal([]byte(raw), &manifest); err != nil {
		t.Fatalf("manifest: %v\n%s", err, raw)
	}
	layerGets := func() int {
		n := 0
		for _, l := range manifest.Layers {
			n += reg.Requests(t, "GET", "/blobs/"+l.Digest)
		}
		return n
	}
	before := layerGets()

	// Runner B: a fresh root. The dry run says every step hits.
	rootB := t.TempDir()
	r := strata(t, env, "build", "--dry-run", "--root", rootB, "--build-arg", base, "--cache-from", cacheRepo,
		"-t", reg.Addr+"/other/hello:b", "--push", hello)
	if r.code != 0 {
		t.Fatalf("dry run: exit %d\n%s", r.code, r.stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		planHeader := strings.HasPrefix(line, "image: from ") || strings.HasPrefix(line, "stage ")
		if !strings.Contains(line, "cached (") && !strings.HasPrefix(line, "would push") && !planHeader {
			t.Errorf("dry run plans to run: %s", line)
		}
	}
	b := mustBuild(t, env, "--root", rootB, "--build-arg", base, "--cache-from", cacheRepo,
		"-t", reg.Addr+"/other/hello:b", "--push", hello)
	if a != b {
		t.Errorf("runner B built %s, runner A %s", b, a)
	}
	if n := layerGets() - before; n != 0 {
		t.Errorf("runner B downloaded %d layer blobs, want 0", n)
	}
	// B pushed to another repository: the layers were mounted, from the
	// cache repository (the steps') and library/busybox (the base's).
	if n := reg.Requests(t, "POST", "/v2/other/hello/blobs/uploads/?from="); n != len(manifest.Layers) {
		t.Errorf("%d cross-repository mounts into other/hello, want %d (every layer)", n, len(manifest.Layers))
	}
}

// TestDryRunAndPrune: a dry run reports hits and misses without running;
// prune removes what the limits do not keep, and the next build rebuilds.
func TestDryRunAndPrune(t *testing.T) {
	requireBuildTools(t)
	root := t.TempDir()
	hello := filepath.Join(examplesDir(t), "hello")
	base := busyboxBase(t)

	r := strata(t, nil, "build", "--dry-run", "--root", root, "--build-arg", base, hello)
	if r.code != 0 || strings.Count(r.stdout, ": run (") != 2 {
		t.Errorf("dry run on an empty root: exit %d, want 2 steps to run:\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "no earlier build of this step") {
		t.Errorf("the dry run does not say why:\n%s", r.stdout)
	}
	mustBuild(t, nil, "--root", root, "--build-arg", base, hello)
	r = strata(t, nil, "build", "--dry-run", "--root", root, "--build-arg", base, hello)
	if strings.Count(r.stdout, ": cached") != 2 {
		t.Errorf("dry run after a build: want 2 cached steps:\n%s", r.stdout)
	}

	r = strata(t, nil, "prune", "--root", root)
	if r.code != 0 || !strings.Contains(r.stderr, "removed 0 cache entries (kept 2)") {
		t.Errorf("prune without limits: exit %d\n%s", r.code, r.stderr)
	}
	r = strata(t, nil, "prune", "--root", root, "--keep-bytes", "1")
	if r.code != 0 || !strings.Contains(r.stderr, "removed 2 cache entries") {
		t.Errorf("prune --keep-bytes 1: exit %d\n%s", r.code, r.stderr)
	}
	r = strata(t, nil, "build", "--dry-run", "--root", root, "--build-arg", base, hello)
	if strings.Count(r.stdout, ": run (") != 2 {
		t.Errorf("dry run after prune: want 2 steps to run:\n%s", r.stdout)
	}
	mustBuild(t, nil, "--root", root, "--build-arg", base, hello)
}

// TestConcurrentBuildsOneRoot runs two builds of the same recipe at once on
// one state root: both succeed with the same image.
func TestConcurrentBuildsOneRoot(t *testing.T) {
	requireBuildTools(t)
	root := t.TempDir()
	args := []string{"--root", root, "--build-arg", busyboxBase(t), filepath.Join(examplesDir(t), "multistage")}
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	results := make(chan result, 2)
	for range 2 {
		go func() { results <- strataAsync(env, append([]string{"build"}, args...)...) }()
	}
	a, b := <-results, <-results
	if a.code != 0 || b.code != 0 {
		t.Fatalf("exit %d and %d\n%s\n%s", a.code, b.code, a.stderr, b.stderr)
	}
	if a.stdout != b.stdout {
		t.Errorf("concurrent builds gave %s and %s", a.stdout, b.stdout)
	}
	assertNoLeftovers(t, root)
}

// TestContextChangesMissTheCache: a change to the context that changes
// what a copy writes misses the cache: the rebuild on the same root makes
// the image a build from nothing makes. The changes: the file a symlink
// source leads to, the owner's exec bit (a copy writes 0755 or 0644 by
// it), and a hardlink between two sources of one copy.
func TestContextChangesMissTheCache(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, `args: {BASE: scratch}
from: ${BASE}
steps:
  - copy: link.txt
    to: /l.txt
  - copy: x.sh
    to: /x.sh
  - copy: d
    to: /d/
`, map[string]string{"real.txt": "v1\n", "x.sh": "echo x\n", "d/a": "same\n", "d/b": "same\n"})
	if err := os.Symlink("real.txt", filepath.Join(ctx, "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(ctx, "x.sh"), 0o654); err != nil {
		t.Fatal(err)
	}
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	root := t.TempDir()
	mustBuild(t, env, "--root", root, ctx)
	for _, change := range []struct {
		what string
		do   func() error
	}{
		{"the file a symlink source leads to", func() error {
			return os.WriteFile(filepath.Join(ctx, "real.txt"), []byte("v2\n"), 0o644)
		}},
		{"the owner's exec bit", func() error { return os.Chmod(filepath.Join(ctx, "x.sh"), 0o754) }},
		{"a hardlink between two sources", func() error {
			if err := os.Remove(filepath.Join(ctx, "d/b")); err != nil {
				return err
			}
			return os.Link(filepath.Join(ctx, "d/a"), filepath.Join(ctx, "d/b"))
		}},
	} {
		if err := change.do(); err != nil {
			t.Fatal(err)
		}
		got := mustBuild(t, env, "--root", root, ctx)
		if want := mustBuild(t, env, "--root", t.TempDir(), ctx); got != want {
			t.Errorf("after a change of %s the build made %s, a build from nothing %s: a wrong cache hit", change.what, got, want)
		}
	}
}

// TestContextEditedDuringTheBuild: a context file edited after the build
// hashed it, before its copy step ran, fails that step ("build again"),
// and records nothing under the key of the old content: put back, the
// file builds the image a build from nothing makes.
func TestContextEditedDuringTheBuild(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, `from: ${BASE}
args: {BASE: scratch}
steps:
  - run: echo waiting; sleep 2
  - copy: f
    to: /f
`, map[string]string{"f": "v1\n"})
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	root := t.TempDir()
	cmd := exec.Command(strataBin, "build", "--root", root, "--build-arg", busyboxBase(t), ctx)
	cmd.Env = append(os.Environ(), env...)
	stderr, pr := startUntil(t, cmd, "sleep 2")
	if err := os.WriteFile(filepath.Join(ctx, "f"), []byte("v2-EDITED\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	copied := make(chan struct{})
	go func() { io.Copy(stderr, pr); close(copied) }()
	err := cmd.Wait()
	<-copied // the rest of its output, to its end
	pr.Close()
	if err == nil || !strings.Contains(stderr.String(), "the build context changed while the build ran (f changed); build again") {
		t.Errorf("the build with f edited before its copy: %v, want a failure saying so\n%s", err, stderr.String())
	}
	if err := os.WriteFile(filepath.Join(ctx, "f"), []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := mustBuild(t, env, "--root", root, "--build-arg", busyboxBase(t), ctx)
	if want := mustBuild(t, env, "--root", t.TempDir(), "--build-arg", busyboxBase(t), ctx); got != want {
		t.Errorf("f put back built %s, a build from nothing %s: the edit was recorded under the old content's key", got, want)
	}
}
