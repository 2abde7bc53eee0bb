package testutil

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Arm64BusyboxPath is where the arm64 busybox of Debian's
// busybox-static:arm64 is kept between test runs: fetched once with
// apt-get download (dpkg --add-architecture arm64 first), as the Debian
// base is made once.
func Arm64BusyboxPath() string {
	return filepath.Join(os.TempDir(), "strata-test-busybox-arm64", "bin", "busybox")
}

var arm64Busybox struct {
	once sync.Once
	err  error
}

// RequireForeignArch skips (or fails under STRATA_REQUIRE_PRIVILEGED=1)
// unless arm64 binaries run here under qemu user emulation registered with
// binfmt_misc with the F flag.
func RequireForeignArch(t testing.TB) {
	t.Helper()
	Require(t, "qemu-aarch64 in binfmt_misc", func() error {
		data, err := os.ReadFile("/proc/sys/fs/binfmt_misc/qemu-aarch64")
		if err != nil {
			return err
		}
		if len(data) < 7 || string(data[:7]) != "enabled" {
			return fmt.Errorf("qemu-aarch64 is disabled")
		}
		return nil
	}, "apt-get install -y qemu-user-static binfmt-support && mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && update-binfmts --enable qemu-aarch64")
}

// fetchArm64Busybox gets busybox-static:arm64 from the host's apt mirror.
func fetchArm64Busybox() error {
	if _, err := os.Stat(Arm64BusyboxPath()); err == nil {
		return nil
	}
	dir := filepath.Dir(filepath.Dir(Arm64BusyboxPath()))
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "strata-test-busybox-arm64-tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, args := range [][]string{{"apt-get", "download", "busybox-static:arm64"}} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = tmp
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %w\n%s (run dpkg --add-architecture arm64 && apt-get update first)", args, err, out)
		}
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "busybox-static_*_arm64.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download gave %v", debs)
	}
	root := filepath.Join(tmp, "root")
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x: %w\n%s", err, out)
	}
	if err := os.MkdirAll(filepath.Dir(Arm64BusyboxPath()), 0o755); err != nil {
		return err
	}
	return os.Rename(filepath.Join(root, "bin", "busybox"), Arm64BusyboxPath())
}

// BusyboxIndexLayout writes, into a fresh temp dir, an OCI layout holding
// an image index tagged BusyboxTag with two busybox images: linux/amd64
// (the host's busybox-static) and linux/arm64 (busybox-static:arm64).
func BusyboxIndexLayout(t testing.TB) string {
	t.Helper()
	if runtime.GOARCH != "amd64" {
		t.Skip("the multi-platform fixture pairs the host's amd64 busybox with an arm64 one")
	}
	Require(t, "busybox", func() error { _, err := os.Stat(BusyboxPath); return err }, "apt-get install -y busybox-static")
	arm64Busybox.once.Do(func() { arm64Busybox.err = fetchArm64Busybox() })
	Require(t, "busybox-static:arm64", func() error { return arm64Busybox.err },
		"dpkg --add-architecture arm64 && apt-get update")
	blobs := map[string][]byte{}
	var descs []v1.Descriptor
	for _, p := range []struct{ bin, arch string }{{BusyboxPath, "amd64"}, {Arm64BusyboxPath(), "arm64"}} {
		bin, err := os.ReadFile(p.bin)
		if err != nil {
			t.Fatal(err)
		}
		d, err := busyboxImage(blobs, bin, p.arch)
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, d)
	}
	child, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: descs})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256Hex(child)
	blobs[sum] = child
	index, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{{
		MediaType: types.OCIImageIndex, Digest: v1.Hash{Algorithm: "sha256", Hex: sum}, Size: int64(len(child)),
		Annotations: map[string]string{ocispec.AnnotationRefName: BusyboxTag},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return writeLayout(t, blobs, index)
}
