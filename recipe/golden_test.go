package recipe

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestGolden loads every testdata/*.yaml, each an invalid recipe, and
// compares the errors with testdata/*.golden. Regenerate with
// go test ./recipe -run TestGolden -update, then read the diff.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/*.yaml")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		t.Run(name, func(t *testing.T) {
			_, err := Load(file)
			if err == nil {
				t.Fatalf("Load(%q) = nil error, want errors", file)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Load(%q) error is %T, want an ErrorList: %v", file, err, err)
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(file, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("Load(%q) errors mismatch (-want +got):\n%s", file, diff)
			}
		})
	}
}

// TestFiveMistakes checks the promise of the recipe contract: every
// problem is reported at once, each at its own position.
func TestFiveMistakes(t *testing.T) {
	_, err := Load("testdata/five-mistakes.yaml")
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Load error is %T %v, want an ErrorList", err, err)
	}
	if len(list) != 5 {
		t.Fatalf("Load gave %d errors, want 5:\n%v", len(list), err)
	}
	lines := map[int]bool{}
	for _, e := range list {
		if !e.Pos.IsValid() || e.Pos.Col == 0 {
			t.Errorf("error without line and column: %v", e)
		}
		lines[e.Pos.Line] = true
	}
	if len(lines) != 5 {
		t.Errorf("errors on %d distinct lines, want 5:\n%v", len(lines), err)
	}
}
