package sandbox

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps sandbox a leaf: it runs a process and knows nothing of
// recipes, layers, images or registries.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"github.com/stratabuild/strata/recipe",
		"github.com/stratabuild/strata/layers",
		"github.com/stratabuild/strata/commit",
		"github.com/google/go-containerregistry",
		"github.com/moby/buildkit",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("sandbox imports %s; it must not depend on %s", dep, f)
			}
		}
	}
}
