// Package emulation tells whether binaries of a foreign architecture can
// run here: under qemu user emulation registered with binfmt_misc with the
// F (fix-binary) flag, which a container needs since the emulator is not in
// its rootfs. It says how to set it up when they cannot.
package emulation

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// BinfmtDir is where the kernel's binfmt_misc lists its handlers.
var BinfmtDir = "/proc/sys/fs/binfmt_misc"

// qemuNames maps GOARCH names to the names of qemu's user emulators, as
// Debian's qemu-user-static registers them.
var qemuNames = map[string]string{
	"amd64": "x86_64", "386": "i386", "arm64": "aarch64", "arm": "arm", "ppc64le": "ppc64le",
	"s390x": "s390x", "riscv64": "riscv64", "mips64le": "mips64el", "loong64": "loongarch64",
}

// Check reports whether a process of architecture arch (GOARCH
// names) can run here: natively, or under qemu user emulation registered
// with binfmt_misc with the F (fix-binary) flag, which a container's
// mount namespace needs since the emulator is not in its rootfs. The
// error says how to set it up.
func Check(arch string) error {
	if arch == runtime.GOARCH || arch == "386" && runtime.GOARCH == "amd64" {
		return nil
	}
	name, ok := qemuNames[arch]
	if !ok {
		return fmt.Errorf("running steps for %s: no qemu user emulator is known for it", arch)
	}
	fix := fmt.Sprintf("install Debian's qemu-user-static and binfmt-support (apt-get install qemu-user-static binfmt-support), "+
		"mount binfmt_misc (mount -t binfmt_misc binfmt_misc %s) and enable it (update-binfmts --enable qemu-%s)", BinfmtDir, name)
	if _, err := os.Stat(filepath.Join(BinfmtDir, "status")); err != nil {
		return fmt.Errorf("running steps for linux/%s needs qemu user emulation, and binfmt_misc is not mounted: %s", arch, fix)
	}
	data, err := os.ReadFile(filepath.Join(BinfmtDir, "qemu-"+name))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("running steps for linux/%s needs qemu user emulation, and no qemu-%s is registered with binfmt_misc: %s", arch, name, fix)
	}
	if err != nil {
		return fmt.Errorf("reading the binfmt_misc entry of qemu-%s: %w", name, err)
	}
	text := string(data)
	if !strings.HasPrefix(text, "enabled") {
		return fmt.Errorf("running steps for linux/%s: qemu-%s is registered with binfmt_misc but disabled: %s", arch, name, fix)
	}
	for _, line := range strings.Split(text, "\n") {
		if flags, ok := strings.CutPrefix(line, "flags: "); ok && strings.Contains(flags, "F") {
			return nil
		}
	}
	return fmt.Errorf("running steps for linux/%s: qemu-%s is registered without the F (fix-binary) flag, so it cannot run inside a container; register it from qemu-user-static's binfmt entries (update-binfmts --enable qemu-%s)", arch, name, name)
}
