package build

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stratabuild/strata/internal/stateroot"
	"github.com/stratabuild/strata/recipe"
)

// TestOldSnapshotsRetired: the snapshots an older strata made (which could
// hold dirs their layers do not, see layers.RetireOldSnapshots) are
// removed by the first build that runs alone on the root; while another
// build runs, they stay, unused.
func TestOldSnapshotsRetired(t *testing.T) {
	root, dir := t.TempDir(), t.TempDir()
	old := filepath.Join(root, "layers", "snapshots")
	p := filepath.Join(dir, "strata.yaml")
	if err := os.WriteFile(p, []byte("from: scratch\nsteps:\n  - run: write /f x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(old, "sha256", "0123", "etc"), 0o755); err != nil {
		t.Fatal(err)
	}

	sr, err := stateroot.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	release, err := sr.LockBuild() // another build, running
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := buildIn(t, root, r); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); err != nil {
		t.Errorf("the old snapshots went while another build ran: %v", err)
	}
	release()

	if _, _, _, _, err := buildIn(t, root, r); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("the old snapshots are still there: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(root, "layers", "tmp", "*")); len(left) > 0 {
		t.Errorf("temp dirs left: %v", left)
	}
}
