package convert

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stratabuild/strata/recipe"
)

var update = flag.Bool("update", false, "rewrite the golden strata.yaml and warnings.txt of testdata/dockerfiles")

// corpus is the Dockerfiles of the conversion corpus.
const corpus = "../../testdata/dockerfiles"

// TestCorpus converts every testdata/dockerfiles/*/Dockerfile, compares
// the recipe and the warnings with the golden strata.yaml and
// warnings.txt beside it, and loads the recipe with recipe.Load (as
// strata validate does), with the dir's context/ as build context.
// Regenerate with go test ./internal/convert -run TestCorpus -update, then
// read the diff.
func TestCorpus(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(corpus, "*", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 10 {
		t.Fatalf("the corpus has %d Dockerfiles, want at least 10", len(dirs))
	}
	for _, df := range dirs {
		dir := filepath.Dir(df)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			src, err := os.ReadFile(df)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Convert("Dockerfile", src)
			if err != nil {
				t.Fatalf("Convert: %v", err)
			}
			var warnings strings.Builder
			for _, w := range res.Warnings {
				warnings.WriteString(w.String() + "\n")
			}
			golden(t, filepath.Join(dir, "strata.yaml"), string(res.Recipe))
			golden(t, filepath.Join(dir, "warnings.txt"), warnings.String())
			r, err := recipe.Parse(filepath.Join(dir, "strata.yaml"), res.Recipe, recipe.WithContext(filepath.Join(dir, "context")))
			if err != nil {
				t.Fatalf("the converted recipe does not load:\n%v\n%s", err, res.Recipe)
			}
			if _, err := r.Needed(""); err != nil {
				t.Errorf("Needed: %v", err)
			}
		})
	}
}

// golden compares got with the file, or rewrites it with -update.
func golden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/convert -run TestCorpus -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", file, diff)
	}
}
