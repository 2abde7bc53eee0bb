package examples_test

import (
	"path/filepath"
	"testing"

	"github.com/stratabuild/strata/recipe"
)

// TestExamplesLoad loads every example recipe: each must be valid and
// give no warning.
func TestExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("*/strata.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d examples (%v), want at least hello, debian and multistage", len(files), files)
	}
	for _, f := range files {
		t.Run(filepath.Dir(f), func(t *testing.T) {
			r, err := recipe.Load(f)
			if err != nil {
				t.Fatalf("Load(%q) errors:\n%v", f, err)
			}
			for _, w := range r.Warnings {
				t.Errorf("Load(%q) warning: %s", f, w)
			}
			if _, err := r.Needed(""); err != nil {
				t.Errorf("Needed(\"\"): %v", err)
			}
		})
	}
}

// TestHello checks the shape the demo script depends on.
func TestHello(t *testing.T) {
	r, err := recipe.Load("hello/strata.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := r.Stages[0]
	if got, want := s.From.Ref, "127.0.0.1:5000/library/busybox:latest"; got != want {
		t.Errorf("from = %q, want %q", got, want)
	}
	if got, want := r.Image.Cmd, []string{"/bin/cat", "/hello.txt"}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("image cmd = %q, want %q", got, want)
	}
	kinds := map[recipe.StepKind]bool{}
	for _, st := range s.Steps {
		kinds[st.Kind] = true
	}
	for _, k := range []recipe.StepKind{recipe.RunStep, recipe.CopyStep, recipe.EnvStep} {
		if !kinds[k] {
			t.Errorf("hello has no %s step", k)
		}
	}
}
