package main_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/internal/testutil"
)

// indexBase is a --build-arg giving a recipe an amd64+arm64 busybox index.
func indexBase(t *testing.T) string {
	t.Helper()
	testutil.RequireForeignArch(t)
	return "BASE=oci-layout://" + testutil.BusyboxIndexLayout(t) + ":" + testutil.BusyboxTag
}

// archOf copies one platform's image out of an index with skopeo and
// unpacks it with umoci; it returns the rootfs and the image's config.
func archOf(t *testing.T, src, arch string) (rootfs string, cfg struct{ Architecture, OS string }) {
	t.Helper()
	dir := t.TempDir()
	args := []string{"copy", "--override-os", "linux", "--override-arch", arch}
	if strings.HasPrefix(src, "docker://") {
		args = append(args, "--src-tls-verify=false")
	}
	run(t, nil, "skopeo", append(args, src, "oci:"+dir+"/img:one")...)
	out := run(t, nil, "skopeo", "inspect", "--config", "oci:"+dir+"/img:one")
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "bundle")
	run(t, nil, "umoci", "unpack", "--image", dir+"/img:one", bundle)
	return filepath.Join(bundle, "rootfs"), cfg
}

// TestTwoPlatformsOneIndex: a step writing `uname -m` builds for amd64 and
// arm64 (the latter under qemu) into one index, in a layout and pushed.
func TestTwoPlatformsOneIndex(t *testing.T) {
	requireBuildTools(t)
	base := indexBase(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: uname -m > /arch && echo ${TARGETPLATFORM} > /target\n", map[string]string{})
	out := filepath.Join(t.TempDir(), "out")
	tag := reg.Addr + "/multi/uname:1"
	digest := mustBuild(t, nil, "--root", t.TempDir(), "--build-arg", base, "--platform", "linux/amd64,linux/arm64",
		"-t", tag, "--push", "-o", "type=oci,dest="+out, ctx)

	var index struct {
		MediaType string
		Manifests []struct {
			Platform struct{ Architecture, OS string }
		}
	}
	raw := run(t, nil, "skopeo", "inspect", "--raw", "oci:"+out+":"+tag)
	if err := json.Unmarshal([]byte(raw), &index); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if index.MediaType != "application/vnd.oci.image.index.v1+json" || len(index.Manifests) != 2 ||
		index.Manifests[0].Platform.Architecture != "amd64" || index.Manifests[1].Platform.Architecture != "arm64" {
		t.Errorf("the layout's index: %s", raw)
	}
	for arch, want := range map[string]string{"amd64": "x86_64", "arm64": "aarch64"} {
		rootfs, cfg := archOf(t, "oci:"+out+":"+tag, arch)
		got, _ := os.ReadFile(filepath.Join(rootfs, "arch"))
		target, _ := os.ReadFile(filepath.Join(rootfs, "target"))
		if strings.TrimSpace(string(got)) != want || cfg.Architecture != arch || strings.TrimSpace(string(target)) != "linux/"+arch {
			t.Errorf("%s image: uname -m %q, config %s, TARGETPLATFORM %q; want %s", arch, got, cfg.Architecture, target, want)
		}
	}

	pushed := run(t, nil, "skopeo", "inspect", "--tls-verify=false", "--raw", "docker://"+tag)
	if !strings.Contains(pushed, "application/vnd.oci.image.index.v1+json") || strings.Count(pushed, `"architecture"`) != 2 {
		t.Errorf("pushed index: %s", pushed)
	}
	if d := run(t, nil, "skopeo", "inspect", "--tls-verify=false", "--raw", "docker://"+tag); sha256Of(d) != digest {
		t.Errorf("the pushed index is %s, strata printed %s", sha256Of(d), digest)
	}
	_, cfg := archOf(t, "docker://"+tag, "arm64")
	if cfg.Architecture != "arm64" {
		t.Errorf("skopeo copy --override-arch arm64 of the pushed index got %s", cfg.Architecture)
	}
}

// TestCrossCompilePattern: a stage on ${BUILDPLATFORM} compiles a Go
// program for ${TARGETARCH}; each target image gets its own binary.
func TestCrossCompilePattern(t *testing.T) {
	requireBuildTools(t)
	base := indexBase(t)
	env, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	goroot := strings.TrimSpace(string(env))
	ctx := writeRecipe(t, `args: {BASE: scratch}
stages:
  - name: toolchain
    from: ${BASE}
    platform: ${BUILDPLATFORM}
    steps:
      - copy: go
        to: /usr/local/go
  - name: build
    from: toolchain
    steps:
      - copy: main.go
        to: /src/main.go
      - run: cd /src && CGO_ENABLED=0 GOOS=linux GOARCH=${TARGETARCH} GOCACHE=/tmp/gocache /usr/local/go/bin/go build -o /out/hello main.go
        mounts: [{type: tmpfs, target: /tmp}]
  - name: app
    from: ${BASE}
    steps:
      - copy: /out/hello
        from: build
        to: /usr/bin/hello
image:
  entrypoint: [/usr/bin/hello]
`, map[string]string{"main.go": "package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"hello\\n\") }\n"})
	if err := os.Mkdir(filepath.Join(ctx, "go"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"bin", "pkg", "src", "go.env", "VERSION"} {
		if out, err := exec.Command("cp", "-a", filepath.Join(goroot, part), filepath.Join(ctx, "go", part)).CombinedOutput(); err != nil {
			t.Fatalf("copying the Go toolchain into the context: %v\n%s", err, out)
		}
	}
	out := filepath.Join(t.TempDir(), "out")
	r := strata(t, nil, "build", "--root", t.TempDir(), "--build-arg", base, "--platform", "linux/amd64,linux/arm64",
		"-t", "x:1", "-o", "type=oci,dest="+out, ctx)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if n := strings.Count(r.stderr, "strata.yaml:7 copy: done"); n != 1 {
		t.Errorf("the toolchain stage, the same for both targets, ran %d times, want once:\n%s", n, r.stderr)
	}
	for arch, want := range map[string]string{"amd64": "x86-64", "arm64": "ARM aarch64"} {
		rootfs, _ := archOf(t, "oci:"+out+":x:1", arch)
		desc := run(t, nil, "file", filepath.Join(rootfs, "usr/bin/hello"))
		if !strings.Contains(desc, want) {
			t.Errorf("%s image: file says %s", arch, desc)
		}
	}
}

// TestWrongPlatformBaseRefused: --platform linux/arm64 on an amd64-only
// base is refused, cached or not, instead of labelling amd64 binaries arm64.
func TestWrongPlatformBaseRefused(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: echo hi > /hi\n", map[string]string{})
	root := t.TempDir()
	mustBuild(t, nil, "--root", root, "--build-arg", busyboxBase(t), ctx)
	for _, extra := range [][]string{nil, {"--no-cache"}} {
		args := append([]string{"build", "--root", root, "--build-arg", busyboxBase(t), "--platform", "linux/arm64", "-o", "type=oci,dest=" + filepath.Join(t.TempDir(), "o")}, extra...)
		r := strata(t, nil, append(args, ctx)...)
		if r.code == 0 || !strings.Contains(r.stderr, "is a linux/amd64 image, not linux/arm64") {
			t.Errorf("strata %v: exit %d\n%s", extra, r.code, r.stderr)
		}
	}
}

// TestMissingEmulationSaidBeforeAnything: with binfmt_misc hidden (an
// empty tmpfs over it, in a mount namespace of the test's own), a build
// for arm64 says how to set up qemu and runs nothing.
func TestMissingEmulationSaidBeforeAnything(t *testing.T) {
	requireBuildTools(t)
	base := indexBase(t)
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: touch /ran\n", map[string]string{})
	script := `mount -t tmpfs none /proc/sys/fs/binfmt_misc && exec "$@"`
	cmd := exec.Command("unshare", append([]string{"-m", "--propagation", "private", "sh", "-c", script, "sh",
		strataBin, "build", "--root", t.TempDir(), "--build-arg", base, "--platform", "linux/arm64"}, ctx)...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "apt-get install qemu-user-static binfmt-support") {
		t.Errorf("err %v:\n%s", err, out)
	}
	if strings.Contains(string(out), "touch /ran") {
		t.Errorf("a step started:\n%s", out)
	}
}

func sha256Of(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}
