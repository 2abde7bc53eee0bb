package layers

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps layers free of recipes, registries, image formats and the
// runtime: it owns snapshots, overlay mounts and layer tars only.
func TestDeps(t *testing.T) {
	forbidden := []string{
		"github.com/stratabuild/strata/build",
		"github.com/stratabuild/strata/recipe",
		"github.com/stratabuild/strata/commit",
		"github.com/google/go-containerregistry",
		"github.com/opencontainers/image-spec",
		"github.com/containerd/go-runc",
	}
	for _, goos := range []string{"linux", "darwin"} {
		cmd := exec.Command("go", "list", "-deps", ".")
		cmd.Env = append(cmd.Environ(), "GOOS="+goos)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps (GOOS=%s): %v", goos, err)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("GOOS=%s: layers depends on %s", goos, dep)
				}
			}
		}
	}
}
