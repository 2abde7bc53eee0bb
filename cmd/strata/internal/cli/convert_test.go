package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratabuild/strata/recipe"
)

func TestConvertCommand(t *testing.T) {
	dir := t.TempDir()
	df := filepath.Join(dir, "Dockerfile")
	src := "FROM busybox\nHEALTHCHECK CMD true\nCOPY a.txt /a.txt\nCMD [\"cat\", \"/a.txt\"]\n"
	if err := os.WriteFile(df, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, nil, "convert", df)
	if code != ExitOK {
		t.Fatalf("strata convert: exit %d, stderr %q", code, stderr)
	}
	if want := df + ":2: HEALTHCHECK has no strata equivalent; left as a comment\n"; stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
	r, err := recipe.Parse("strata.yaml", []byte(stdout))
	if err != nil {
		t.Fatalf("stdout is not a valid recipe: %v\n%s", err, stdout)
	}
	if r.Stages[0].From.Ref != "busybox:latest" || len(r.Stages[0].Steps) != 1 || r.Image.Cmd[0] != "cat" {
		t.Errorf("recipe = %+v", r)
	}
	if !strings.Contains(stdout, "# HEALTHCHECK CMD true") {
		t.Errorf("the HEALTHCHECK is not left as a comment:\n%s", stdout)
	}

	if err := os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("*.log\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// strata reads a .dockerignore itself: nothing to say about it.
	if _, _, stderr = run(t, nil, "convert", df); strings.Contains(stderr, "dockerignore") {
		t.Errorf("stderr = %q, want no note on .dockerignore", stderr)
	}

	if err := os.WriteFile(df, []byte("FROM busybox\nFROOM x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = run(t, nil, "convert", df)
	if code != ExitUsage || stdout != "" || !strings.HasPrefix(stderr, "strata: "+df+":2: ") {
		t.Errorf("unparsable Dockerfile: exit %d, stdout %q, stderr %q; want %d, nothing, strata: %s:2: ...", code, stdout, stderr, ExitUsage, df)
	}
	if code, _, _ := run(t, nil, "convert", filepath.Join(dir, "nope")); code != ExitUsage {
		t.Errorf("missing Dockerfile: exit %d, want %d", code, ExitUsage)
	}
	if code, _, _ := run(t, nil, "convert", "a", "b"); code != ExitUsage {
		t.Errorf("two arguments: exit %d, want %d", code, ExitUsage)
	}
}
