package main_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/internal/testutil"
)

// dockerCertsD is where docker, podman and skopeo look for a registry's CA.
const dockerCertsD = "/etc/docker/certs.d"

// installCA puts reg's CA in /etc/docker/certs.d/ADDR/ca.crt and removes
// it (and certs.d, if this made it) when the test ends.
func installCA(t *testing.T, reg *testutil.Registry) string {
	t.Helper()
	_, err := os.Stat(dockerCertsD)
	madeCertsD := errors.Is(err, fs.ErrNotExist)
	hostDir := filepath.Join(dockerCertsD, reg.Addr)
	t.Cleanup(func() {
		os.RemoveAll(hostDir)
		if madeCertsD {
			os.Remove(dockerCertsD)
		}
	})
	return reg.WriteCertsD(t, dockerCertsD)
}

// TestPrivateCAFromDockerCertsD: a TLS registry whose private CA is
// installed only in /etc/docker/certs.d/127.0.0.1:PORT/ca.crt accepts a
// push, and the pushed image is pulled back as the base of another build,
// with no SSL_CERT_FILE or SSL_CERT_DIR. Before the CA is installed the
// push fails, saying where to put it.
func TestPrivateCAFromDockerCertsD(t *testing.T) {
	requireBuildTools(t)
	testutil.Require(t, "skopeo", func() error { _, err := exec.LookPath("skopeo"); return err }, "apt-get install -y skopeo")
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true})
	env := []string{"SSL_CERT_FILE=", "SSL_CERT_DIR="}
	root := t.TempDir()
	hello := filepath.Join(examplesDir(t), "hello")
	ref := reg.Addr + "/demo/hello:1"

	r := strata(t, env, "build", "--root", root, "--build-arg", busyboxBase(t), "-t", ref, "--push", hello)
	wantFix := filepath.Join(dockerCertsD, reg.Addr, "ca.crt")
	if r.code != 1 || !strings.Contains(r.stderr, wantFix) {
		t.Errorf("push with the CA not installed: exit %d, want 1 and a message naming %s\n%s", r.code, wantFix, r.stderr)
	}

	installCA(t, reg)
	dg := mustBuild(t, env, "--root", root, "--build-arg", busyboxBase(t), "-t", ref, "--push", hello)
	out := run(t, nil, "skopeo", "inspect", "--cert-dir", reg.CertDir, "docker://"+ref)
	var info struct{ Digest string }
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("skopeo inspect: %v\n%s", err, out)
	}
	if info.Digest != dg {
		t.Errorf("%s has digest %s, strata printed %s", ref, info.Digest, dg)
	}

	// The pushed image, pulled back over TLS, is the base of a new build.
	ctx := writeRecipe(t, "from: "+ref+"\nsteps:\n  - run: cat /hello.txt > /copied.txt\nimage:\n  cmd: [/bin/cat, /copied.txt]\n", map[string]string{})
	layout := filepath.Join(t.TempDir(), "on-top.oci")
	mustBuild(t, env, "--root", t.TempDir(), "-t", "on-top:1", "-o", "type=oci,dest="+layout, ctx)
	if got := runBundle(t, layout, "on-top:1"); !strings.Contains(got, "hello from strata") {
		t.Errorf("the image built on the pulled base printed %q, want the base's /hello.txt", got)
	}
}
