package recipe

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes Parse panic, and that what it
// returns is consistent: a recipe, or an ErrorList of positioned errors.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"../examples/*/strata.yaml", "testdata/*.yaml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Parse("fuzz.yaml", data, WithBuildArgs(map[string]string{"BASE": "scratch"}))
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("Parse error is %T %v, want a non-empty ErrorList", err, err)
			}
			for _, e := range list {
				if e.Pos.File != "fuzz.yaml" || e.Msg == "" {
					t.Fatalf("error without position or message: %q", e)
				}
			}
			return
		}
		if r == nil || len(r.Stages) == 0 {
			t.Fatalf("Parse returned no error and no stages")
		}
		if _, err := r.Needed(""); err != nil {
			t.Fatalf("Needed(\"\") of a valid recipe: %v", err)
		}
		for _, s := range r.Stages {
			if _, err := s.Expand([]string{"PATH=/bin", "HOME=/root"}); err != nil {
				var list ErrorList
				if !errors.As(err, &list) {
					t.Fatalf("Expand error is %T, want an ErrorList", err)
				}
			}
			for _, st := range s.Steps {
				if st.Run != nil {
					_ = st.Run.Argv(nil)
				}
			}
		}
	})
}
