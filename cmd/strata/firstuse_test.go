package main_test

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratabuild/strata/internal/testutil"
)

// TestValidateRegistryBase checks that validate calls a registry base
// that is not there an error, as build would stop at it, and one it could
// not ask about (out of reach, refusing the credentials) a warning.
func TestValidateRegistryBase(t *testing.T) {
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	authReg := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, Auth: true})
	web := httptest.NewServer(http.NotFoundHandler()) // a web server on the wrong port
	defer web.Close()
	notReg := strings.TrimPrefix(web.URL, "http://")
	for _, tc := range []struct {
		name, from string
		args       []string
		code       int
		want       string
	}{
		{name: "no such tag", from: reg.Addr + "/library/busybx:latest", code: 2,
			want: "no such tag (repository library/busybx has no tag latest, or does not exist)\n"},
		{name: "unreachable", from: "127.0.0.1:1/library/busybox:latest", code: 0,
			want: "cannot reach registry 127.0.0.1:1: connection refused — is it running? (warning: names only its env defines were not checked)\n"},
		{name: "not a registry", from: notReg + "/library/busybox:latest", code: 0,
			want: "is not a registry: it answers 404 Not Found to the registry API's /v2/"},
		{name: "no credentials", from: authReg.Addr + "/library/busybox:latest", code: 0,
			args: []string{"--insecure-registry", authReg.Addr},
			want: "(warning: names only its env defines were not checked)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := writeRecipe(t, "from: "+tc.from+"\nsteps:\n  - run: \"true\"\n", map[string]string{})
			r := strata(t, []string{"DOCKER_CONFIG=" + t.TempDir()}, append(append([]string{"validate"}, tc.args...), ctx)...)
			if r.code != tc.code {
				t.Errorf("validate: exit %d, want %d\n%s", r.code, tc.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.want) {
				t.Errorf("validate said:\n%s\nwant it to say %q", r.stderr, tc.want)
			}
			if ok := strings.Contains(r.stderr, "strata.yaml: ok"); ok != (tc.code == 0) {
				t.Errorf("validate said ok: %v, want %v\n%s", ok, tc.code == 0, r.stderr)
			}
		})
	}
}

// TestMissingLocalBaseIsInvalidRecipe checks that a base a layout does not
// hold (a typo in its tag) is an invalid recipe for build as for
// validate: exit 2, at the from: line, before anything runs.
func TestMissingLocalBaseIsInvalidRecipe(t *testing.T) {
	testutil.RequireRoot(t)
	layout := testutil.BusyboxLayout(t)
	ctx := writeRecipe(t, "from: oci-layout://"+layout+":latst\nsteps:\n  - run: \"true\"\n", map[string]string{})
	want := ctx + `/strata.yaml:1:7: pulling the base: oci-layout://` + layout + `:latst: no image tagged "latst"`
	for _, args := range [][]string{{"validate", ctx}, {"build", "--root", t.TempDir(), ctx}} {
		r := strata(t, nil, args...)
		if r.code != 2 {
			t.Errorf("strata %s: exit %d, want 2\n%s", args[0], r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, want) {
			t.Errorf("strata %s said:\n%s\nwant %q", args[0], r.stderr, want)
		}
	}
}

// TestUnusableHomeSaysHowToChooseRoot: a user whose HOME cannot hold the
// default state directory (a service user's /nonexistent) is told, before
// anything runs, to choose one with --root or STRATA_ROOT.
func TestUnusableHomeSaysHowToChooseRoot(t *testing.T) {
	u := requireRootless(t)
	ctx := sharedRecipe(t, "from: scratch\nsteps:\n  - file: /a\n    content: a\n", map[string]string{})
	r := strataAs(t, u, []string{"HOME=/nonexistent", "XDG_DATA_HOME=", "STRATA_ROOT="}, "build", ctx)
	want := "strata: cannot build rootless: the default state directory /nonexistent/.local/share/strata cannot be made " +
		"(mkdir /nonexistent: permission denied) (pass --root DIR or set STRATA_ROOT to a directory you can write)\n"
	if r.code != 2 || r.stderr != want {
		t.Errorf("strata build as %s with HOME=/nonexistent: exit %d, stderr:\n%s\nwant exit 2 and:\n%s", u.Name, r.code, r.stderr, want)
	}
}

// strataStdin runs strata with stdin read from in.
func strataStdin(t *testing.T, in string, args ...string) result {
	t.Helper()
	cmd := exec.Command(strataBin, args...)
	cmd.Stdin = strings.NewReader(in)
	r, err := runCmd(cmd)
	if err != nil {
		t.Fatalf("running strata: %v", err)
	}
	return r
}

// TestRecipeOnStdin: -f - reads the recipe from stdin, as docker build
// -f - reads the Dockerfile; CONTEXT must then be given, and the copy
// sources are its files.
func TestRecipeOnStdin(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, "not: [the, recipe]\n", map[string]string{"a.txt": "a\n"})
	yaml := "from: scratch\nsteps:\n  - copy: a.txt\n    to: /a.txt\n"
	r := strataStdin(t, yaml, "validate", "-f", "-", ctx)
	if r.code != 0 || r.stderr != "<stdin>: ok (1 stage, 1 step)\n" {
		t.Errorf("strata validate -f - CTX: exit %d\n%s", r.code, r.stderr)
	}
	r = strataStdin(t, yaml, "build", "-q", "--root", t.TempDir(), "-o", "type=oci,dest="+filepath.Join(t.TempDir(), "out"), "-f", "-", ctx)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "sha256:") {
		t.Errorf("strata build -f - CTX: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = strataStdin(t, "from: scratch\nsteps:\n  - copy: b.txt\n    to: /\n", "validate", "-f", "-", ctx)
	if want := "<stdin>:3:5: copy source \"b.txt\" does not exist in the build context"; r.code != 2 || !strings.Contains(r.stderr, want) {
		t.Errorf("strata validate -f - CTX of a missing source: exit %d\n%s\nwant exit 2 and %q", r.code, r.stderr, want)
	}
	want := "strata: -f -: the recipe is read from stdin, so give CONTEXT too, the directory copy sources are read from (-f - DIR)\n"
	for _, cmd := range []string{"validate", "build"} {
		r := strataStdin(t, yaml, cmd, "-f", "-")
		if r.code != 2 || r.stderr != want {
			t.Errorf("strata %s -f -: exit %d, stderr %q; want exit 2 and %q", cmd, r.code, r.stderr, want)
		}
	}
}

// TestRecipeMistakesSayTheFix: a recipe named strata.yml, and a
// Dockerfile given as the recipe, are said to be what they are, with the
// command that fixes them.
func TestRecipeMistakesSayTheFix(t *testing.T) {
	yml := t.TempDir()
	if err := os.WriteFile(filepath.Join(yml, "strata.yml"), []byte("from: scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dockerfile := "# syntax=docker/dockerfile:1\nFROM busybox\nRUN echo hi\n"
	df := writeRecipe(t, dockerfile, map[string]string{"build.df": "arg V=1\nfrom busybox:${V}\n"}) // lowercase, as docker takes it too
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"validate", yml}, "strata: no recipe: " + yml + "/strata.yaml does not exist; found strata.yml: strata reads strata.yaml (or pass -f " + yml + "/strata.yml)\n"},
		{[]string{"validate", df}, df + "/strata.yaml:2:1: expected a mapping, got a string\n" +
			"strata: " + df + "/strata.yaml looks like a Dockerfile: `mv " + df + "/strata.yaml " + df + "/Dockerfile && strata convert " + df + "/Dockerfile > " + df + "/strata.yaml` writes a recipe from it\n"},
		{[]string{"validate", "-f", df + "/build.df", df}, df + "/build.df:1:1: expected a mapping, got a string\n" +
			"strata: " + df + "/build.df looks like a Dockerfile: `strata convert " + df + "/build.df > " + df + "/strata.yaml` writes a recipe from it\n"},
	} {
		r := strata(t, nil, tc.args...)
		if r.code != 2 || r.stderr != tc.want {
			t.Errorf("strata %q: exit %d, stderr:\n%s\nwant exit 2 and:\n%s", tc.args, r.code, r.stderr, tc.want)
		}
	}
	r := strataStdin(t, dockerfile, "validate", "-f", "-", df)
	if want := "strata: the recipe on stdin looks like a Dockerfile: save it as Dockerfile, then `strata convert Dockerfile > strata.yaml` writes a recipe from it\n"; !strings.HasSuffix(r.stderr, want) {
		t.Errorf("strata validate -f - of a Dockerfile: exit %d, stderr:\n%s\nwant it to end with:\n%s", r.code, r.stderr, want)
	}
}

// TestPlatformPinAgainstPlatformsIsInvalidRecipe: platforms: with an image
// stage pinned to one of them is refused, by validate as by build: exit 2,
// at the platform: key, before anything runs.
func TestPlatformPinAgainstPlatformsIsInvalidRecipe(t *testing.T) {
	testutil.RequireRoot(t)
	layout := testutil.BusyboxLayout(t)
	ctx := writeRecipe(t, "from: oci-layout://"+layout+"\nplatforms: [linux/amd64, linux/arm64]\nplatform: linux/amd64\nsteps:\n  - run: \"true\"\n", map[string]string{})
	want := ctx + "/strata.yaml:3:11: the image's stage is built for linux/amd64 (its platform: or that of the stage it continues), but this build is for linux/arm64"
	for _, args := range [][]string{{"validate", ctx}, {"build", "--root", t.TempDir(), ctx}} {
		r := strata(t, nil, args...)
		if r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("strata %s: exit %d, want 2 and %q\n%s", args[0], r.code, want, r.stderr)
		}
	}
}

// TestValidateInterrupted: validate stopped (^C, a CI job's timeout) while
// a registry does not answer fails, exit 1; it said "ok", exit 0, taking
// the interrupted pull for an unreachable registry's warning.
func TestValidateInterrupted(t *testing.T) {
	addr := testutil.SilentServer(t)
	ctx := writeRecipe(t, "from: "+addr+"/library/busybox:latest\nsteps:\n  - run: \"true\"\n", map[string]string{})
	cmd := exec.Command(strataBin, "validate", ctx)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || strings.Contains(stderr.String(), "ok (") || !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("validate stopped: %v\n%s\nwant exit 1, interrupted", err, stderr.String())
	}
}

// TestStdinRecipeInterrupted: a build waiting for its recipe on stdin
// (-f -) stops on SIGTERM, interrupted, instead of waiting for as long as
// what writes it hangs.
func TestStdinRecipeInterrupted(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close() // never written
	cmd := exec.Command(strataBin, "build", "--root", t.TempDir(), "-f", "-", t.TempDir())
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stderr = pr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	time.Sleep(300 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "interrupted") {
			t.Errorf("strata stopped waiting for stdin: %v\n%s\nwant exit 1, interrupted", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("strata went on waiting for stdin after SIGTERM")
	}
}
