package strata_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/stratabuild/strata"

// boundaries is the package map of DESIGN.md as rules: for each package, the
// import path prefixes it must not reach, directly or transitively. build is
// the only package that imports the others; build/cache may use commit for
// registry caches and layer blobs, build/plan recipe and commit to resolve
// bases, build/chain layers and commit to unpack, mount and diff.
var boundaries = []struct {
	pkg    string
	forbid []string
}{
	{"recipe", []string{
		module + "/build", module + "/layers", module + "/commit",
		"github.com/google/go-containerregistry", "github.com/opencontainers/",
		"github.com/containerd/", "github.com/moby/buildkit", "golang.org/x/sys/unix",
	}},
	{"layers", []string{
		module + "/build", module + "/recipe", module + "/commit",
		"github.com/google/go-containerregistry", "github.com/opencontainers/image-spec",
		"github.com/containerd/go-runc",
	}},
	{"commit", []string{
		module + "/build", module + "/recipe", module + "/layers",
		"github.com/moby/buildkit/util/overlay", "github.com/containerd/go-runc", "go.yaml.in/yaml/v3",
	}},
	{"build/sandbox", []string{
		module + "/recipe", module + "/layers", module + "/commit",
		"github.com/google/go-containerregistry", "github.com/moby/buildkit",
	}},
	{"build/cache", []string{
		module + "/recipe", module + "/layers", module + "/build/sandbox", module + "/build/plan",
		"github.com/moby/buildkit",
	}},
	{"build/plan", []string{
		module + "/layers", module + "/build/sandbox", "github.com/containerd/", "github.com/moby/buildkit",
	}},
	// build/chain turns steps' changes into layers: it neither plans,
	// caches nor runs processes.
	{"build/chain", []string{
		module + "/recipe", module + "/build/plan", module + "/build/cache", module + "/build/sandbox",
		"github.com/moby/buildkit",
	}},
	// internal/inputfile is imported by recipe: it must stay as plain.
	{"internal/inputfile", []string{
		module + "/build", module + "/recipe", module + "/layers", module + "/commit",
		"github.com/google/go-containerregistry", "github.com/opencontainers/",
		"github.com/containerd/", "github.com/moby/buildkit", "golang.org/x/sys/unix",
	}},
	{"internal/fscopy", []string{
		module + "/build", module + "/recipe", module + "/layers", module + "/commit",
		"github.com/google/go-containerregistry", "github.com/moby/buildkit",
	}},
	{"internal/rootfs", []string{
		module + "/build", module + "/recipe", module + "/layers", module + "/commit", module + "/internal/fscopy",
		"github.com/google/go-containerregistry", "github.com/containerd/",
	}},
	{"internal/userns", []string{
		module + "/build", module + "/recipe", module + "/layers", module + "/commit",
		"github.com/google/go-containerregistry", "github.com/containerd/",
	}},
	{"internal/stateroot", []string{
		module + "/build", module + "/recipe", module + "/layers", module + "/commit",
		"github.com/google/go-containerregistry", "github.com/containerd/",
	}},
}

// TestPackageBoundaries keeps the package boundaries of DESIGN.md: recipe
// knows no OCI, overlay or container code; layers knows no registry; commit
// knows no overlay; the sandbox knows nothing of recipes, layers or images.
func TestPackageBoundaries(t *testing.T) {
	for _, b := range boundaries {
		t.Run(b.pkg, func(t *testing.T) {
			path := module + "/" + b.pkg
			for _, goos := range []string{"linux", "darwin"} {
				cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", path)
				cmd.Env = append(cmd.Environ(), "GOOS="+goos, "CGO_ENABLED=0")
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("go list -deps %s (GOOS=%s): %v", path, goos, err)
				}
				for _, dep := range strings.Fields(string(out)) {
					for _, f := range b.forbid {
						if strings.HasPrefix(dep, f) {
							t.Errorf("%s (GOOS=%s) depends on %s; DESIGN.md forbids %s*", path, goos, dep, f)
						}
					}
				}
			}
		})
	}
}
