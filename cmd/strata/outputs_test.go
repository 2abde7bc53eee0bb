package main_test

import (
	"encoding/json"
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
