package convert

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stratabuild/strata/recipe"
)

// stepText is a step as a line: its action and its value.
func stepText(st *recipe.Step) string {
	switch {
	case st.Run != nil && st.Run.Exec:
		return "run " + strings.Join(st.Run.Args, " ")
	case st.Run != nil:
		return "run " + st.Run.Command
	case st.Copy != nil:
		return "copy " + strings.Join(st.Copy.Sources, " ") + " " + st.Copy.To
	case st.File != nil:
		return "file " + st.File.Path
	case st.Kind == recipe.WorkdirStep:
		return "workdir " + st.Workdir
	case st.Kind == recipe.UserStep:
		return "user " + st.User
	}
	return st.Kind.String()
}

// TestWorkdirCreates checks that WORKDIR makes its directory where
// docker's would differ: under a USER, the missing directories owned by
// that user, before the workdir step (a scratch stage, without a mkdir,
// gets a warning); as root nothing is added (the steps after it make it
// as root as they need it) but a COPY to its path copies into it.
func TestWorkdirCreates(t *testing.T) {
	for _, tc := range []struct {
		name, df string
		steps    []string
		warnings []string
	}{
		{"root", "FROM busybox\nWORKDIR /app\nCOPY a.txt /app\n",
			[]string{"workdir /app", "copy a.txt /app/"}, nil},
		{"relative, cleaned", "FROM busybox\nWORKDIR /opt\nWORKDIR app/./x/\n",
			[]string{"workdir /opt", "workdir /opt/app/x"}, nil},
		{"root by name", "FROM busybox\nUSER root:0\nWORKDIR /app\n",
			[]string{"user root:0", "workdir /app"}, nil},
		{"the root needs none", "FROM busybox\nWORKDIR /\n", []string{"workdir /"}, nil},
		{"under a user", "FROM busybox\nUSER nobody\nWORKDIR /work\nRUN touch x\n",
			[]string{"user nobody", "user 0", "run /bin/sh -c " + mkdirScript + " sh /work nobody", "user nobody", "workdir /work", "run touch x"}, nil},
		{"user of the parent stage", "FROM busybox AS a\nUSER 1000:1000\nFROM a\nWORKDIR /w\n",
			[]string{"user 0", "run /bin/sh -c " + mkdirScript + " sh /w 1000:1000", "user 1000:1000", "workdir /w"}, nil},
		{"a parent stage's, relative ones, a copy with an owner",
			"FROM busybox AS base\nWORKDIR /app\nFROM base\nCOPY a.txt /app\nWORKDIR /opt\nWORKDIR sub\nCOPY a.txt /opt/sub\nWORKDIR /w/data\nCOPY --chown=1000:1000 a.txt ./\n",
			[]string{"copy a.txt /app/", "workdir /opt", "workdir /opt/sub", "copy a.txt /opt/sub/", "workdir /w/data", "run /bin/mkdir -p /w/data", "copy a.txt /w/data/"}, nil},
		{"a run made it", "FROM busybox\nWORKDIR /w\nRUN true\nCOPY --chown=1000 a.txt ./\n",
			[]string{"workdir /w", "run true", "copy a.txt /w/"}, nil},
		{"a copy as root made it", "FROM busybox\nWORKDIR /w\nCOPY a.txt /w/\nCOPY --chown=5 b.txt /w/\n",
			[]string{"workdir /w", "copy a.txt /w/", "copy b.txt /w/"}, nil},
		{"scratch, root", "FROM scratch\nWORKDIR /app\nCOPY a /app/\n",
			[]string{"workdir /app", "copy a /app/"}, nil},
		{"scratch, a user", "FROM scratch\nUSER 1000\nWORKDIR /app\n",
			[]string{"user 1000", "workdir /app"},
			[]string{"Dockerfile:3: docker's WORKDIR creates /app; strata's workdir step does not, and this stage's base is scratch, without a mkdir to run: a copy into it creates it, owned by the copy's owner"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, text, ws := conv(t, tc.df)
			var got []string
			for _, st := range lastStage(r).Steps {
				got = append(got, stepText(st))
			}
			if diff := cmp.Diff(tc.steps, got); diff != "" {
				t.Errorf("steps (-want +got):\n%s\n%s", diff, text)
			}
			if diff := cmp.Diff(tc.warnings, ws); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMkdirScript runs the script of a WORKDIR under a USER: it makes
// the missing directories of a relative or absolute path, leaves the
// ones there as they are, and chowns what it made (here to the test's
// own user, which needs no privilege).
func TestMkdirScript(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skipf("no sh to run the script: %v", err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "there"), 0o700); err != nil {
		t.Fatal(err)
	}
	me := strconv.Itoa(os.Getuid())
	for _, p := range []string{"there/a/b", filepath.Join(dir, "abs", "c") + "/"} {
		cmd := exec.Command("sh", "-c", mkdirScript, "sh", p, me)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("script %s: %v\n%s", p, err, out)
		}
	}
	for p, mode := range map[string]os.FileMode{"there": 0o700, "there/a": 0o755, "there/a/b": 0o755, "abs": 0o755, "abs/c": 0o755} {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil || !fi.IsDir() || fi.Mode().Perm()&^0o022 != mode&^0o022 {
			t.Errorf("%s: %v %v, want a directory %v", p, fi, err, mode)
		}
	}
}
