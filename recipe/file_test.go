package recipe

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestValidTestdata loads every testdata/valid/*.yaml: each must load
// without error or warning.
func TestValidTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/valid/*.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			r, err := Load(f)
			if err != nil {
				t.Fatalf("Load(%q):\n%v", f, err)
			}
			for _, w := range r.Warnings {
				t.Errorf("Load(%q) warning: %s", f, w)
			}
		})
	}
}

func TestFileStep(t *testing.T) {
	r, err := Load("testdata/valid/file-step.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m600 := os.FileMode(0o600)
	want := []*File{
		{Path: "/etc/app.conf", Content: "port = 8080\nhome = $HOME\n"},
		{Path: "/etc/motd", Content: "no newline at the end", Mode: &m600, Owner: &Owner{User: "1000", UID: 1000, Group: "1000", GID: 1000}},
		{Path: "/empty", Content: ""},
	}
	var got []*File
	for _, s := range r.Stages[0].Steps {
		if s.Kind != FileStep {
			t.Errorf("step %d kind = %v, want file", s.Index+1, s.Kind)
		}
		got = append(got, s.File)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("file steps mismatch (-want +got):\n%s", diff)
	}
	if got := r.Stages[0].Steps[1].Name; got != "write the motd" {
		t.Errorf("step 2 name = %q, want %q", got, "write the motd")
	}
	if got := got[0].Perm(); got != DefaultFileMode {
		t.Errorf("Perm() without mode = %v, want %v", got, DefaultFileMode)
	}
	if got := got[1].Perm(); got != 0o600 {
		t.Errorf("Perm() with mode 0600 = %v, want 0600", got)
	}
}

// TestFileStepExactBytes checks that content keeps its bytes: leading
// spaces, tabs, blank lines, a kept (|+) trailing blank line, and no
// trailing newline for a quoted string.
func TestFileStepExactBytes(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"literal", "content: |\n      a\n        b\n\n      c\n", "a\n  b\n\nc\n"},
		{"strip", "content: |-\n      a\n", "a"},
		{"keep", "content: |+\n      a\n\n", "a\n\n"},
		{"quoted", `content: "tab\there\n\u00e9"`, "tab\there\n\u00e9"},
		{"literal dollar", "content: \"$${X} $X\"", "${X} $X"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustParse(t, "from: scratch\nsteps:\n  - file: /f\n    "+tc.yaml)
			if got := r.Stages[0].Steps[0].File.Content; got != tc.want {
				t.Errorf("content = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFileStepBaseEnv checks that a name only the base image's env can
// define is expanded by Expand.
func TestFileStepBaseEnv(t *testing.T) {
	r := mustParse(t, "from: busybox:latest\nsteps:\n  - file: f\n    content: \"path=${PATH}\"\n")
	s := r.Stages[0]
	if len(s.Unresolved) != 1 || s.Unresolved[0].Name != "PATH" {
		t.Fatalf("Unresolved = %v, want PATH", s.Unresolved)
	}
	x, err := s.Expand([]string{"PATH=/bin"})
	if err != nil {
		t.Fatal(err)
	}
	// A relative path stays relative: the build resolves it against the
	// base image's WorkingDir.
	if got, want := *x.Steps[0].File, (File{Path: "f", Content: "path=/bin"}); !cmp.Equal(got, want) {
		t.Errorf("expanded file = %+v, want %+v", got, want)
	}
}

func TestFileStepTwoActions(t *testing.T) {
	got := parseErrs(t, "from: scratch\nsteps:\n  - file: /f\n    content: x\n    run: echo\n")
	want := []string{`strata.yaml:5:5: step 1: two actions in one step: file and run (split it into two steps)`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors mismatch (-want +got):\n%s", diff)
	}
}
