package stateroot

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stratabuild/strata/internal/testutil"
)

const sharedEnv = "STRATA_TEST_STATEROOT_SHARED"

// TestKindsNotShared: a state dir made by a rootful build is refused by a
// rootless one (in a user namespace), and one made rootless by root.
func TestKindsNotShared(t *testing.T) {
	shared := os.Getenv(sharedEnv)
	if shared == "" {
		testutil.RequireRoot(t)
		shared = testutil.SharedDir(t)
		if _, err := Open(filepath.Join(shared, "rootful")); err != nil {
			t.Fatal(err)
		}
		// As if root had handed the user its state dir.
		id := strconv.Itoa(testutil.UserNSHostID)
		if out, err := exec.Command("chown", "-R", id+":"+id, filepath.Join(shared, "rootful")).CombinedOutput(); err != nil {
			t.Fatalf("chown: %v\n%s", err, out)
		}
		t.Setenv(sharedEnv, shared)
	}
	if testutil.InUserNS(t, testutil.SubIDMaps) {
		_, err := Open(filepath.Join(shared, "rootful"))
		if err == nil || !strings.Contains(err.Error(), "holds the layers of rootful builds, which a rootless build cannot use") {
			t.Errorf("Open of a rootful state dir in a user namespace = %v", err)
		}
		if _, err := Open(filepath.Join(shared, "rootless")); err != nil {
			t.Fatalf("Open in a user namespace: %v", err)
		}
		return
	}
	b, err := os.ReadFile(filepath.Join(shared, "rootless", kindFile))
	if err != nil || string(b) != "rootless\n" {
		t.Fatalf("the rootless state dir's kind: %q, %v", b, err)
	}
	_, err = Open(filepath.Join(shared, "rootless"))
	if err == nil || !strings.Contains(err.Error(), "holds the layers of rootless builds, which a rootful build cannot use") ||
		!strings.Contains(err.Error(), "give this build another --root") {
		t.Errorf("Open of a rootless state dir as root = %v", err)
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("STRATA_ROOT", "/srv/state")
	if got := DefaultDir(); got != "/srv/state" {
		t.Errorf("DefaultDir with STRATA_ROOT = %q", got)
	}
	t.Setenv("STRATA_ROOT", "")
	t.Setenv("XDG_DATA_HOME", "/home/u/.data")
	want := "/home/u/.data/strata"
	if os.Geteuid() == 0 && !Rootless() {
		want = "/var/lib/strata"
	}
	if got := DefaultDir(); got != want {
		t.Errorf("DefaultDir = %q, want %q", got, want)
	}
}

func TestUseUserRuntimeDir(t *testing.T) {
	old := SecretDir
	t.Cleanup(func() { SecretDir = old })
	rt := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", rt)
	if err := UseUserRuntimeDir(4242); err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(rt, "strata"); SecretDir != want {
		t.Errorf("SecretDir = %q, want %q", SecretDir, want)
	}
	if err := os.Chmod(filepath.Join(rt, "strata"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := UseUserRuntimeDir(4242); err == nil || !strings.Contains(err.Error(), "not a directory only you can use") {
		t.Errorf("UseUserRuntimeDir with a dir others can enter = %v", err)
	}
}
