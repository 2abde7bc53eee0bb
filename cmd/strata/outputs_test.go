package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/internal/testutil"
)

// TestPushOverTLSWithAuth pushes to a real distribution registry on
// loopback, over TLS with a CA the test made and htpasswd auth, the
// credentials coming from a docker config.json, and reads the result back
// with skopeo.
func TestPushOverTLSWithAuth(t *testing.T) {
	requireBuildTools(t)
	testutil.Require(t, "skopeo", func() error { _, err := exec.LookPath("skopeo"); return err }, "apt-get install -y skopeo")
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, Auth: true})
	env := []string{"DOCKER_CONFIG=" + reg.DockerConfig, "SSL_CERT_FILE=" + reg.CAFile}
	skopeoAuth := []string{"--authfile", filepath.Join(reg.DockerConfig, "config.json"), "--cert-dir", reg.CertDir}

	// The base lives in the same registry, so its layers are mounted
	// across repositories, not uploaded again.
	bb := testutil.BusyboxLayout(t)
	run(t, nil, "skopeo", append([]string{"copy", "--dest-authfile", filepath.Join(reg.DockerConfig, "config.json"),
		"--dest-cert-dir", reg.CertDir, "oci:" + bb + ":" + testutil.BusyboxTag}, "docker://"+reg.Addr+"/library/busybox:latest")...)

	ref := reg.Addr + "/demo/hello:1"
	layoutDir := filepath.Join(t.TempDir(), "hello.oci")
	dg := mustBuild(t, env, "--root", t.TempDir(), "--build-arg", "BASE="+reg.Addr+"/library/busybox:latest",
		"-t", ref, "-t", reg.Addr+"/demo/hello:latest", "--push", "-o", "type=oci,dest="+layoutDir,
		filepath.Join(examplesDir(t), "hello"))
	// The layout needs the base's blobs, fetched after every step ran.
	if got := ociIndexDigest(t, layoutDir, ref); got != dg {
		t.Errorf("layout has %s, strata printed %s", got, dg)
	}

	for _, tag := range []string{ref, reg.Addr + "/demo/hello:latest"} {
		out := run(t, nil, "skopeo", append(append([]string{"inspect"}, skopeoAuth...), "docker://"+tag)...)
		var info struct{ Digest string }
		if err := json.Unmarshal([]byte(out), &info); err != nil {
			t.Fatalf("skopeo inspect: %v\n%s", err, out)
		}
		if info.Digest != dg {
			t.Errorf("%s has digest %s, strata printed %s", tag, info.Digest, dg)
		}
	}
	// busybox's one layer is mounted from library/busybox; the two new
	// layers (the run and the copy) and the config are uploaded.
	if n := reg.Requests(t, "POST", "/v2/demo/hello/blobs/uploads/?from=library%2Fbusybox&mount="); n != 1 {
		t.Errorf("%d cross-repository mounts, want 1 (the busybox layer)", n)
	}
	if n := reg.Requests(t, "PUT", "/v2/demo/hello/blobs/uploads/"); n != 3 {
		t.Errorf("%d blob uploads, want 3 (two layers and the config)", n)
	}

	// Without credentials the push is refused, with exit status 1.
	r := strata(t, []string{"DOCKER_CONFIG=" + t.TempDir(), "SSL_CERT_FILE=" + reg.CAFile}, "build", "--root", t.TempDir(),
		"--build-arg", busyboxBase(t), "-t", reg.Addr+"/demo/hello:2", "--push", filepath.Join(examplesDir(t), "hello"))
	if r.code != 1 {
		t.Errorf("push without credentials: exit %d, want 1\n%s", r.code, r.stderr)
	}
}

// TestDockerLoadAndRun writes a docker-archive, loads it into a real
// dockerd with `docker load` and runs it; then does the same with --load.
func TestDockerLoadAndRun(t *testing.T) {
	requireBuildTools(t)
	host := testutil.StartDockerd(t)
	denv := []string{"DOCKER_HOST=" + host}
	archive := filepath.Join(t.TempDir(), "hello.tar")
	root := t.TempDir()
	mustBuild(t, nil, "--root", root, "--build-arg", busyboxBase(t), "-t", "strata-e2e/hello:archive",
		"-o", "type=docker,dest="+archive, filepath.Join(examplesDir(t), "hello"))
	run(t, denv, "/usr/bin/docker", "load", "-i", archive)
	out := run(t, denv, "/usr/bin/docker", "run", "--rm", "--network", "none", "strata-e2e/hello:archive")
	if !strings.Contains(out, "hello from strata") {
		t.Errorf("docker run printed %q", out)
	}

	mustBuild(t, denv, "--root", root, "--build-arg", busyboxBase(t), "-t", "strata-e2e/hello:loaded", "--load",
		filepath.Join(examplesDir(t), "hello"))
	out = run(t, denv, "/usr/bin/docker", "run", "--rm", "--network", "none", "strata-e2e/hello:loaded")
	if !strings.Contains(out, "hello from strata") {
		t.Errorf("docker run of the --load image printed %q", out)
	}
}

// TestOutputBlobWrittenInPlace: a layout output shares its blobs' inodes
// with the state root. A blob written into in place there (dd
// conv=notrunc) is not handed on under its digest by the next build's
// layout or archive: that build fails, naming it, and the one after makes
// it again, whole.
func TestOutputBlobWrittenInPlace(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: head -c 100000 /dev/urandom > /r\n", map[string]string{})
	root, dir := t.TempDir(), t.TempDir()
	build := func(out string) result {
		return strata(t, nil, "build", "--root", root, "--build-arg", busyboxBase(t), "-o", out, ctx)
	}
	first := build("type=oci,dest=" + filepath.Join(dir, "out1"))
	if first.code != 0 {
		t.Fatalf("build: exit %d\n%s", first.code, first.stderr)
	}
	for _, out := range []string{"type=oci,dest=" + filepath.Join(dir, "out2"), "type=docker,dest=" + filepath.Join(dir, "a.tar")} {
		// The step's layer: the largest blob of the first layout.
		var big string
		var size int64
		blobs := filepath.Join(dir, "out1", "blobs", "sha256")
		entries, err := os.ReadDir(blobs)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if fi, err := e.Info(); err == nil && fi.Size() > size {
				big, size = e.Name(), fi.Size()
			}
		}
		f, err := os.OpenFile(filepath.Join(blobs, big), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("garbage"), 20); err != nil {
			t.Fatal(err)
		}
		f.Close()
		r := build(out)
		if r.code != 1 || !strings.Contains(r.stderr, "blob sha256:"+big+" under the state root was changed after strata wrote it") {
			t.Errorf("%s after a blob was written into in place: exit %d, want 1 naming the blob\n%s", out, r.code, r.stderr)
		}
		again := build(out)
		if again.code != 0 || strings.TrimSpace(again.stdout) != strings.TrimSpace(first.stdout) {
			t.Fatalf("%s, built again: exit %d, %s; want %s\n%s", out, again.code, again.stdout, first.stdout, again.stderr)
		}
		// Made anew under the state root, and linked into out1's place.
		if err := os.RemoveAll(filepath.Join(dir, "out1")); err != nil {
			t.Fatal(err)
		}
		if r := build("type=oci,dest=" + filepath.Join(dir, "out1")); r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
		run(t, nil, "sh", "-c", `cd `+blobs+` && for f in *; do [ "$(sha256sum < "$f" | cut -c1-64)" = "$f" ] || { echo "$f holds other content"; exit 1; }; done`)
	}
}

// TestArchiveInsideALayoutEitherOrder: a docker archive written into an
// OCI layout output's dir works whichever -o comes first (layouts are
// written first); a layout inside another is refused before the build.
func TestArchiveInsideALayoutEitherOrder(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - env: {X: \"1\"}\n", map[string]string{})
	root := t.TempDir()
	for _, archiveFirst := range []bool{true, false} {
		dir := filepath.Join(t.TempDir(), "o")
		outs := []string{"-o", "type=oci,dest=" + dir, "-o", "type=docker,dest=" + filepath.Join(dir, "img.tar")}
		if archiveFirst {
			outs = append(outs[2:], outs[:2]...)
		}
		mustBuild(t, nil, append([]string{"--root", root, "--build-arg", busyboxBase(t)}, append(outs, ctx)...)...)
		for _, f := range []string{"index.json", "img.tar"} {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("archive first: %t: %v", archiveFirst, err)
			}
		}
	}
	dir := filepath.Join(t.TempDir(), "o")
	r := strata(t, nil, "build", "--root", root, "--build-arg", busyboxBase(t), "-o", "type=oci,dest="+dir, "-o", "type=oci,dest="+filepath.Join(dir, "blobs"), ctx)
	if r.code != 2 || !strings.Contains(r.stderr, "is inside the OCI layout") {
		t.Errorf("a layout inside a layout: exit %d, want 2\n%s", r.code, r.stderr)
	}
}
