package emulation

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	if runtime.GOARCH != "amd64" {
		t.Skip("the cases name amd64 as the host")
	}
	if err := Check("amd64"); err != nil {
		t.Errorf("the host's architecture: %v", err)
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"not mounted", nil, "binfmt_misc is not mounted"},
		{"not registered", map[string]string{"status": "enabled\n"}, "no qemu-aarch64 is registered"},
		{"disabled", map[string]string{"status": "enabled\n", "qemu-aarch64": "disabled\nflags: PF\n"}, "disabled"},
		{"no F flag", map[string]string{"status": "enabled\n", "qemu-aarch64": "enabled\ninterpreter /usr/bin/qemu-aarch64\nflags: P\n"}, "without the F (fix-binary) flag"},
		{"ready", map[string]string{"status": "enabled\n", "qemu-aarch64": "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\n"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			BinfmtDir = t.TempDir()
			t.Cleanup(func() { BinfmtDir = "/proc/sys/fs/binfmt_misc" })
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(BinfmtDir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := Check("arm64")
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Check = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Check = %v, want %q", err, tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), "apt-get install qemu-user-static binfmt-support") && tc.name != "no F flag":
				t.Errorf("Check = %v, want how to set it up", err)
			}
		})
	}
}
