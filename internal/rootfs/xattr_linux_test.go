package rootfs

import (
	"os"
	"path/filepath"
	"testing"
)

// TestXattrNamesAllocs: listing the xattrs of a file that has none makes
// one allocation, the NUL-terminated copy of the path x/sys/unix makes;
// its 1 KiB buffer stays on the stack.
func TestXattrNamesAllocs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = XattrNames(p) }); n > 1 {
		t.Errorf("XattrNames(%q) made %v allocations, want at most 1", p, n)
	}
}
