package commit_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps commit free of the packages that run steps and mount
// overlays: it must stay usable (and testable) without root.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/stratabuild/strata/commit").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/stratabuild/strata/build",
		"github.com/stratabuild/strata/recipe",
		"github.com/stratabuild/strata/layers",
		"github.com/moby/buildkit/util/overlay",
		"github.com/containerd/go-runc",
		"go.yaml.in/yaml/v3",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("commit depends on %s", dep)
			}
		}
	}
}
