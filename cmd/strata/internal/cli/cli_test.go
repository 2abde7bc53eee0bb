package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/build"
	"github.com/stratabuild/strata/build/plan"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/recipe"
)

const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// fakeBuilder records what the command hands to the build.
type fakeBuilder struct {
	calls  int
	req    Request
	recipe *recipe.Recipe
	err    error
}

func (f *fakeBuilder) build(_ context.Context, req Request, r *recipe.Recipe, stderr io.Writer) (string, error) {
	f.calls++
	f.req, f.recipe = req, r
	io.WriteString(stderr, "progress...\n")
	if f.err != nil {
		return "", f.err
	}
	return digest, nil
}

// run runs strata with args and returns the exit code, stdout and stderr.
func run(t *testing.T, b Builder, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), args, &stdout, &stderr, b)
	return code, stdout.String(), stderr.String()
}

// context writes a valid recipe into a new build context.
func newContext(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	recipe := "args: {BASE: scratch, V: \"1\"}\nfrom: ${BASE}\nsteps:\n  - copy: a.txt\n    to: /a-${V}.txt\n"
	for name, content := range map[string]string{"strata.yaml": recipe, "a.txt": "a"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBuildOptions(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	t.Setenv("STRATA_RUNTIME", "crun")
	t.Setenv("DOCKER_HOST", fakeDockerd(t)) // --load pings it
	dir := newContext(t)
	root := t.TempDir()
	f := &fakeBuilder{}
	code, stdout, stderr := run(t, f.build, "build",
		"-t", "127.0.0.1:5000/app:1", "--tag", "127.0.0.1:5000/app:latest", "--push",
		"-o", "type=oci,dest=out", "--output", "type=docker,dest=app.tar", "-o", "type=registry",
		"--load", "--build-arg", "V=2", "--platform", "linux/aarch64", "--no-cache",
		"--compression", "zstd", "--progress", "plain", "--root", root,
		"--insecure-registry", "registry.internal:5000", dir)
	if code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr)
	}
	if stdout != digest+"\n" {
		t.Errorf("stdout = %q, want only the digest", stdout)
	}
	epoch := time.Unix(1700000000, 0).UTC()
	reg := commit.RegistryOptions{Insecure: []string{"registry.internal:5000"}}
	tag := func(s string) name.Tag { t, _ := name.NewTag(s); return t }
	want := Request{
		Context: dir, File: filepath.Join(dir, "strata.yaml"), BuildArgs: map[string]string{"V": "2"}, Progress: "plain",
		Build: build.Options{
			Root: root,
			Tags: []name.Tag{tag("127.0.0.1:5000/app:1"), tag("127.0.0.1:5000/app:latest")},
			Outputs: []commit.Output{{Type: commit.OutputOCI, Dest: "out"}, {Type: commit.OutputDocker, Dest: "app.tar"},
				{Type: commit.OutputRegistry}, {Type: commit.OutputDaemon}},
			Platforms:   []v1.Platform{{OS: "linux", Architecture: "arm64"}},
			NoCache:     true,
			Compression: commit.Zstd,
			Runtime:     "crun",
			Registry:    reg,
			Epoch:       &epoch,
		},
	}
	if diff := cmp.Diff(want, f.req, cmp.Comparer(func(a, b name.Tag) bool { return a.String() == b.String() })); diff != "" {
		t.Errorf("Request mismatch (-want +got):\n%s", diff)
	}
	if f.recipe == nil {
		t.Fatal("builder got no recipe")
	}
	if got := f.recipe.Stages[0].Steps[0].Copy.To; got != "/a-2.txt" {
		t.Errorf("recipe loaded without --build-arg: copy to = %q, want /a-2.txt", got)
	}
}

func TestBuildDefaults(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
	t.Setenv("STRATA_RUNTIME", "")
	dir := newContext(t)
	t.Chdir(dir)
	f := &fakeBuilder{}
	code, _, stderr := run(t, f.build, "build")
	if code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr)
	}
	want := Request{Context: ".", File: "strata.yaml", Progress: "auto", Build: build.Options{Root: defaultRoot(), Compression: commit.Gzip}}
	if diff := cmp.Diff(want, f.req); diff != "" {
		t.Errorf("Options mismatch (-want +got):\n%s", diff)
	}
}

func TestBuildExitCodes(t *testing.T) {
	dir := newContext(t)
	bad := filepath.Join("..", "..", "..", "..", "recipe", "testdata", "five-mistakes.yaml")
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		buildErr error
		code     int
		stderr   string // a line stderr must hold
		built    bool
	}{
		{name: "build failed", args: []string{"build", dir}, buildErr: errors.New("step 1: run exited with status 2"), code: 1, stderr: "strata: step 1: run exited with status 2", built: true},
		{name: "unknown flag", args: []string{"build", "--bogus", dir}, code: 2, stderr: "unknown flag: --bogus"},
		{name: "two contexts", args: []string{"build", dir, dir}, code: 2, stderr: "accepts at most 1 arg"},
		{name: "unknown command", args: []string{"biuld"}, code: 2, stderr: "unknown command"},
		{name: "cache-from", args: []string{"build", "--cache-from", "Bad Repo", dir}, code: 2, stderr: "--cache-from: bad reference"},
		{name: "push without tag", args: []string{"build", "--push", dir}, code: 2, stderr: "--push needs at least one --tag"},
		{name: "registry output without tag", args: []string{"build", "-o", "type=registry", dir}, code: 2, stderr: "type=registry needs at least one --tag"},
		{name: "bad output", args: []string{"build", "-o", "type=tar,dest=x", dir}, code: 2, stderr: `unknown type "tar"`},
		{name: "bad tag", args: []string{"build", "-t", "registry:5000/App:1", dir}, code: 2, stderr: `--tag: bad reference "registry:5000/App:1"`},
		{name: "bad compression", args: []string{"build", "--compression", "xz", dir}, code: 2, stderr: `--compression: bad value "xz"`},
		{name: "bad progress", args: []string{"build", "--progress", "fancy", dir}, code: 2, stderr: `--progress: bad value "fancy"`},
		{name: "bad platform", args: []string{"build", "--platform", "linux", dir}, code: 2, stderr: `--platform: bad platform "linux"`},
		{name: "bad build-arg", args: []string{"build", "--build-arg", "=x", dir}, code: 2, stderr: "--build-arg: bad value"},
		{name: "bad epoch", args: []string{"build", dir}, env: map[string]string{"SOURCE_DATE_EPOCH": "yesterday"}, code: 2, stderr: `SOURCE_DATE_EPOCH="yesterday"`},
		{name: "unknown target", args: []string{"build", "--target", "nope", dir}, code: 2, stderr: `--target: unknown target stage "nope"`},
		{name: "missing recipe", args: []string{"build", t.TempDir()}, code: 2, stderr: "strata.yaml does not exist"},
		{name: "invalid recipe", args: []string{"build", "-f", bad, dir}, code: 2, stderr: "five-mistakes.yaml:4:5: step 1: unknown key \"rn\" (did you mean \"run\"?)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", tt.env["SOURCE_DATE_EPOCH"])
			f := &fakeBuilder{err: tt.buildErr}
			var b Builder = f.build
			if tt.name == "default builder" {
				b = nil
			}
			code, stdout, stderr := run(t, b, tt.args...)
			if code != tt.code {
				t.Errorf("strata %q exit = %d, want %d; stderr:\n%s", tt.args, code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("strata %q stderr = %q, want it to hold %q", tt.args, stderr, tt.stderr)
			}
			if stdout != "" {
				t.Errorf("strata %q stdout = %q, want nothing", tt.args, stdout)
			}
			if built := f.calls > 0; built != tt.built && b != nil {
				t.Errorf("strata %q ran the builder: %v, want %v", tt.args, built, tt.built)
			}
		})
	}
}

func TestValidateFiveMistakes(t *testing.T) {
	file := filepath.Join("..", "..", "..", "..", "recipe", "testdata", "five-mistakes.yaml")
	code, stdout, stderr := run(t, nil, "validate", "-f", file)
	if code != 2 {
		t.Errorf("validate exit = %d, want 2", code)
	}
	var errs []string
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if strings.HasPrefix(line, file+":") {
			errs = append(errs, line)
		}
	}
	if len(errs) != 5 {
		t.Errorf("validate printed %d positioned errors, want 5; stderr:\n%s", len(errs), stderr)
	}
	if stdout != "" {
		t.Errorf("validate stdout = %q, want nothing", stdout)
	}
}

func TestValidateExamples(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("..", "..", "..", "..", "examples", "*", "strata.yaml"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no examples found: %v", err)
	}
	for _, f := range dirs {
		dir := filepath.Dir(f)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			code, _, stderr := run(t, nil, "validate", dir)
			if code != 0 {
				t.Errorf("validate %s exit = %d, want 0; stderr:\n%s", dir, code, stderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	old := Version
	Version = "v9.8.7"
	t.Cleanup(func() { Version = old })
	code, stdout, _ := run(t, nil, "version")
	if code != 0 || !strings.HasPrefix(stdout, "strata v9.8.7 (go") {
		t.Errorf("version = %d %q, want 0 and \"strata v9.8.7 (go...)\"", code, stdout)
	}
}

// TestValidateReportsContextProblems: every missing or escaping copy
// source is reported with its position, exit 2, as the build would.
func TestValidateReportsContextProblems(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	recipe := "from: scratch\nsteps:\n  - copy: [one.txt, two.txt]\n    to: /x/\n  - copy: escape\n    to: /e\n"
	if err := os.WriteFile(filepath.Join(dir, "strata.yaml"), []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := run(t, nil, "validate", dir)
	for _, want := range []string{`strata.yaml:3:5: copy source "one.txt" does not exist`, `strata.yaml:3:5: copy source "two.txt" does not exist`,
		`strata.yaml:5:5: copy source "escape": it leaves the build context`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("validate stderr lacks %q:\n%s", want, stderr)
		}
	}
	if code != 2 {
		t.Errorf("validate exit %d, want 2", code)
	}
}

// TestSeveralPlatformsNeedAnIndexOutput: a docker archive or --load hold
// one image: with two platforms they are refused before the build.
func TestSeveralPlatformsNeedAnIndexOutput(t *testing.T) {
	t.Setenv("DOCKER_HOST", fakeDockerd(t)) // --load pings it
	dir := newContext(t)
	for _, out := range [][]string{{"-o", "type=docker,dest=" + filepath.Join(t.TempDir(), "x.tar")}, {"--load"}} {
		f := &fakeBuilder{}
		code, _, stderr := run(t, f.build, append(append([]string{"build", "--platform", "linux/amd64,linux/arm64"}, out...), dir)...)
		if code != ExitUsage || f.calls != 0 || !strings.Contains(stderr, "holds one image only") {
			t.Errorf("%v: exit %d, built %v:\n%s", out, code, f.calls > 0, stderr)
		}
	}
	// The recipe's platforms: likewise.
	recipe := "platforms: [linux/amd64, linux/arm64]\nfrom: scratch\nsteps:\n  - copy: a.txt\n    to: /a.txt\n"
	if err := os.WriteFile(filepath.Join(dir, "strata.yaml"), []byte(recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &fakeBuilder{}
	code, _, stderr := run(t, f.build, "build", "--load", dir)
	if code != ExitUsage || f.calls != 0 || !strings.Contains(stderr, "holds one image only") {
		t.Errorf("platforms: with --load: exit %d, built %v:\n%s", code, f.calls > 0, stderr)
	}
}

// TestPlatformFlagRepeated: --platform given several times adds up, as
// buildx's does, with comma-separated lists mixed in.
func TestPlatformFlagRepeated(t *testing.T) {
	dir := newContext(t)
	f := &fakeBuilder{}
	code, _, stderr := run(t, f.build, "build", "--platform", "linux/amd64", "--platform", "linux/arm64,linux/arm/v7", "-o", "type=oci,dest="+filepath.Join(t.TempDir(), "o"), dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var got []string
	for _, p := range f.req.Build.Platforms {
		got = append(got, p.String())
	}
	if want := []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}; !slices.Equal(got, want) {
		t.Errorf("platforms %q, want %q", got, want)
	}
}

// TestValidateRefusesWhatTheBuildWould: validate reports a local base
// that is not there and a run with an empty program as errors (exit 2),
// not as warnings: the build would fail on both.
func TestValidateRefusesWhatTheBuildWould(t *testing.T) {
	for name, yaml := range map[string]string{
		"missing layout": "from: oci-layout:///nonexistent/layout:latest\nsteps: []\n",
		"empty program":  "from: scratch\nsteps:\n  - run: [\"\"]\n",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "strata.yaml"), []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := run(t, nil, "validate", dir)
			if code != ExitUsage || strings.Contains(stderr, "warning") {
				t.Errorf("exit %d, want %d with an error:\n%s", code, ExitUsage, stderr)
			}
		})
	}
}

// TestOutputToStdoutRefused: -o type=oci,dest=- is a usage error saying
// why, and makes no directory named "-".
func TestOutputToStdoutRefused(t *testing.T) {
	dir := newContext(t)
	t.Chdir(t.TempDir())
	f := &fakeBuilder{}
	code, _, stderr := run(t, f.build, "build", "-o", "type=oci,dest=-", dir)
	if code != ExitUsage || f.calls != 0 || !strings.Contains(stderr, "cannot go to stdout (dest=-)") {
		t.Errorf("exit %d, built %v:\n%s", code, f.calls > 0, stderr)
	}
	if _, err := os.Lstat("-"); err == nil {
		t.Error("a directory named - was made")
	}
}

// fakeDockerd answers the docker API's /_ping on a unix socket; it
// returns its DOCKER_HOST.
func fakeDockerd(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_ping" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, "OK")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return "unix://" + sock
}

// TestLoadWithoutDaemon: --load with no docker daemon answering is a
// usage error before the build, not a failure after it; the docker
// context names the daemon when DOCKER_HOST does not.
func TestLoadWithoutDaemon(t *testing.T) {
	dir := newContext(t)
	dead := "unix://" + filepath.Join(t.TempDir(), "docker.sock")
	t.Setenv("DOCKER_HOST", dead)
	f := &fakeBuilder{}
	code, _, stderr := run(t, f.build, "build", "--load", dir)
	if code != ExitUsage || f.calls != 0 || !strings.Contains(stderr, "--load: no docker daemon answers at "+dead+" (DOCKER_HOST)") {
		t.Errorf("exit %d, built %v:\n%s", code, f.calls > 0, stderr)
	}

	config := t.TempDir()
	meta := filepath.Join(config, "contexts", "meta", fmt.Sprintf("%x", sha256.Sum256([]byte("fake"))), "meta.json")
	if err := os.MkdirAll(filepath.Dir(meta), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(meta, []byte(`{"Name":"fake","Endpoints":{"docker":{"Host":"`+fakeDockerd(t)+`"}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(config, "config.json"), []byte(`{"currentContext":"fake"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_HOST", "")
	t.Setenv("DOCKER_CONFIG", config)
	f = &fakeBuilder{}
	if code, _, stderr := run(t, f.build, "build", "--load", dir); code != 0 || f.calls != 1 {
		t.Errorf("--load with the current context's daemon answering: exit %d\n%s", code, stderr)
	}
}

// TestDryRunLoadNeedsNoDaemon: --dry-run --load writes nothing, so it
// does not ask for a daemon; a build with --load does.
func TestDryRunLoadNeedsNoDaemon(t *testing.T) {
	dir := newContext(t)
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "no.sock"))
	t.Setenv("DOCKER_CONTEXT", "")
	f := &fakeBuilder{}
	if code, _, stderr := run(t, f.build, "build", "--dry-run", "--load", dir); code != 0 || f.calls != 1 {
		t.Errorf("--dry-run --load with no daemon: exit %d, %d builds\n%s", code, f.calls, stderr)
	}
	if code, _, _ := run(t, f.build, "build", "--load", dir); code != ExitUsage {
		t.Errorf("--load with no daemon: exit %d, want %d", code, ExitUsage)
	}
}

// TestVersionFlag: strata --version prints what strata version does.
func TestVersionFlag(t *testing.T) {
	_, want, _ := run(t, nil, "version")
	code, stdout, stderr := run(t, nil, "--version")
	if code != 0 || stdout != want || !strings.HasPrefix(stdout, "strata ") {
		t.Errorf("strata --version: exit %d, stdout %q, stderr %q; want exit 0 and %q", code, stdout, stderr, want)
	}
}

// TestBaseMissing: a base is missing (a recipe error) when its layout or
// archive does not hold it, or a registry answered it has no such
// manifest; not when a file could not be read, nor when the host is no
// registry.
func TestBaseMissing(t *testing.T) {
	for _, tc := range []struct {
		name string
		pe   *plan.PullError
		want bool
	}{
		{"no such tag in a layout", &plan.PullError{Local: true, Err: errors.New(`no image tagged "latst" in /l`)}, true},
		{"no such file", &plan.PullError{Local: true, Err: &fs.PathError{Op: "open", Path: "/a.tar", Err: fs.ErrNotExist}}, true},
		{"permission denied", &plan.PullError{Local: true, Err: fmt.Errorf("reading: %w", &fs.PathError{Op: "open", Path: "/l/index.json", Err: syscall.EACCES})}, false},
		{"registry connection refused", &plan.PullError{Err: syscall.ECONNREFUSED}, false},
	} {
		if got := baseMissing(tc.pe); got != tc.want {
			t.Errorf("%s: baseMissing = %t, want %t", tc.name, got, tc.want)
		}
	}
}

// TestBuildArgFromEnvironment: a bare --build-arg NAME takes $NAME, and
// is ignored when NAME is not set (the arg keeps its default), as docker:
// CI lines pass --build-arg http_proxy whether or not there is a proxy.
func TestBuildArgFromEnvironment(t *testing.T) {
	dir := newContext(t)
	for _, tc := range []struct {
		name, env, want string
	}{{"set", "7", "/a-7.txt"}, {"set empty", "", "/a-.txt"}, {"unset", "-", "/a-1.txt"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("V", tc.env)
			if tc.env == "-" {
				os.Unsetenv("V")
			}
			f := &fakeBuilder{}
			code, _, stderr := run(t, f.build, "build", "--root", t.TempDir(), "--build-arg", "V", dir)
			if code != 0 {
				t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr)
			}
			if got := f.recipe.Stages[0].Steps[0].Copy.To; got != tc.want {
				t.Errorf("copy to = %q, want %q", got, tc.want)
			}
		})
	}
}
