package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Busybox is the static busybox binary from Debian's busybox-static package.
const Busybox = "/bin/busybox"

// BusyboxRootfs fills dir with a minimal root filesystem: /bin/busybox (a
// copy of the host's static binary) and a symlink per applet in /bin,
// /etc/passwd with root (0) and app (1000:1000, home /home/app), and
// /etc/group with root (0), app (1000) and staff (50) whose member is app.
// Nothing else: no /dev, /proc, /sys, /etc/hosts. It skips (or fails under
// STRATA_REQUIRE_PRIVILEGED=1) when busybox-static is not installed.
func BusyboxRootfs(t testing.TB, dir string) {
	t.Helper()
	Require(t, "busybox-static", func() error {
		return exec.Command(Busybox, "true").Run()
	}, "apt-get install -y busybox-static")
	out, err := exec.Command(Busybox, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(Busybox)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(bin, applet)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\nstaff:x:50:app\napp:x:1000:\n",
	}
	if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
