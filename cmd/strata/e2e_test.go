package main_test

// End-to-end tests: the strata binary, built once, run as a user runs it,
// against real runc, real overlay, a real registry and a real docker daemon.
// What it produced is checked with tools we did not write (umoci, runc,
// skopeo, docker).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratabuild/strata/internal/testutil"
)

var strataBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	strataBin = filepath.Join(dir, "strata")
	cmd := exec.Command("go", "build", "-o", strataBin, ".")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building strata:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// strata runs the binary with extra environment entries.
func strata(t *testing.T, env []string, args ...string) result {
	t.Helper()
	r := strataAsync(env, args...)
	if r.code == -1 {
		t.Fatalf("running strata: %s", r.stderr)
	}
	return r
}

// strataAsync is strata for other goroutines: errors are in the result.
func strataAsync(env []string, args ...string) result {
	cmd := exec.Command(strataBin, args...)
	cmd.Env = append(os.Environ(), env...)
	return runAsync(cmd)
}

// runAsync runs cmd and returns its output and exit status; an error
// other than a non-zero exit is in the result too, as code -1 and its
// message as stderr.
func runAsync(cmd *exec.Cmd) result {
	r, err := runCmd(cmd)
	if err != nil {
		r.code, r.stderr = -1, err.Error()
	}
	return r
}

// runCmd runs cmd and returns its output and exit status, or the error that
// kept it from running to an exit.
func runCmd(cmd *exec.Cmd) (result, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		r.code, err = exit.ExitCode(), nil
	}
	return r, err
}

// mustBuild runs `strata build` and returns the digest it printed.
func mustBuild(t *testing.T, env []string, args ...string) string {
	t.Helper()
	r := strata(t, env, append([]string{"build"}, args...)...)
	if r.code != 0 {
		t.Fatalf("strata build %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	dg := strings.TrimSpace(r.stdout)
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(dg) {
		t.Fatalf("stdout is not only a digest: %q", r.stdout)
	}
	return dg
}

func requireBuildTools(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	for _, tool := range []string{"runc", "umoci"} {
		testutil.Require(t, tool, func() error { _, err := exec.LookPath(tool); return err },
			"apt-get install -y "+tool)
	}
}

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// examplesDir is the repository's examples directory.
func examplesDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "examples"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeRecipe writes a build context holding strata.yaml and files.
func writeRecipe(t *testing.T, yaml string, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files["strata.yaml"] = yaml
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// ociIndexDigest is the manifest digest a layout's index.json names for ref.
func ociIndexDigest(t *testing.T, layout, ref string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	for _, m := range idx.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] == ref {
			return m.Digest
		}
	}
	t.Fatalf("%s/index.json has no ref %q: %s", layout, ref, data)
	return ""
}

// runBundle unpacks an image from an OCI layout with umoci and runs it with
// runc, returning what it printed.
func runBundle(t *testing.T, layout, ref string) string {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, nil, "umoci", "unpack", "--image", layout+":"+ref, bundle)
	cfgPath := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatal(err)
	}
	spec["process"].(map[string]any)["terminal"] = false
	data, _ = json.Marshal(spec)
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	id := fmt.Sprintf("strata-e2e-%d", os.Getpid())
	cmd := exec.Command("runc", "--root", state, "run", "--bundle", bundle, id)
	out, err := cmd.CombinedOutput()
	exec.Command("runc", "--root", state, "delete", "-f", id).Run()
	if err != nil {
		t.Fatalf("runc run: %v\n%s", err, out)
	}
	return string(out)
}

// busyboxBase is a --build-arg giving examples/hello its busybox base.
func busyboxBase(t *testing.T) string {
	return "BASE=oci-layout://" + testutil.BusyboxLayout(t) + ":" + testutil.BusyboxTag
}

func TestHelloRunsInRunc(t *testing.T) {
	requireBuildTools(t)
	root, out := t.TempDir(), filepath.Join(t.TempDir(), "hello.oci")
	meta := filepath.Join(t.TempDir(), "metadata.json")
	r := strata(t, nil, "build", "--root", root, "--build-arg", busyboxBase(t), "--metadata-file", meta,
		"-t", "hello:latest", "-o", "type=oci,dest="+out, filepath.Join(examplesDir(t), "hello"))
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	dg := strings.TrimSpace(r.stdout)
	if got := ociIndexDigest(t, out, "hello:latest"); got != dg {
		t.Errorf("printed digest %s, layout has %s", dg, got)
	}
	// Progress: one line per step with its position.
	if !strings.Contains(r.stderr, "strata.yaml:") {
		t.Errorf("progress names no recipe position:\n%s", r.stderr)
	}
	checkMetadata(t, meta, dg)
	got := runBundle(t, out, "hello:latest")
	if !strings.Contains(got, "hello from strata") {
		t.Errorf("the image printed %q, want it to say hello from strata", got)
	}
	assertNoLeftovers(t, root)
}

// assertNoLeftovers checks that nothing of a finished build stays mounted
// or running under root.
func assertNoLeftovers(t *testing.T, root string) {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, root) {
			t.Errorf("still mounted: %s", line)
		}
	}
	for _, dir := range []string{"runc", "mnt"} {
		entries, _ := os.ReadDir(filepath.Join(root, dir))
		for _, e := range entries {
			t.Errorf("left behind: %s", filepath.Join(root, dir, e.Name()))
		}
	}
}

func TestFailingStepReportsAndKeepsOutput(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, `from: ${BASE}
args: {BASE: scratch}
steps:
  - run: echo preparing > /ok
  - run: |
      echo "first line of trouble"
      echo "boom" >&2
      exit 3
    name: doomed
`, map[string]string{})
	root, out := t.TempDir(), filepath.Join(t.TempDir(), "img.oci")
	before := mustBuild(t, nil, "--root", root, "--build-arg", busyboxBase(t), "-t", "x:1", "-o", "type=oci,dest="+out, filepath.Join(examplesDir(t), "hello"))

	r := strata(t, nil, "build", "--root", root, "--build-arg", busyboxBase(t), "-t", "x:1", "-o", "type=oci,dest="+out, ctx)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("stdout = %q, want nothing", r.stdout)
	}
	for _, want := range []string{"strata.yaml:5", "status 3", `echo "first line of trouble"`, "boom", "doomed"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if got := ociIndexDigest(t, out, "x:1"); got != before {
		t.Errorf("the failed build replaced the good output: %s → %s", before, got)
	}
	assertNoLeftovers(t, root)
}

func TestReproducibleWithSourceDateEpoch(t *testing.T) {
	requireBuildTools(t)
	base := busyboxBase(t)
	env := []string{"SOURCE_DATE_EPOCH=1700000000"}
	var digests []string
	for range 2 {
		out := filepath.Join(t.TempDir(), "img.oci")
		digests = append(digests, mustBuild(t, env, "--root", t.TempDir(), "--build-arg", base,
			"-t", "r:1", "-o", "type=oci,dest="+out, filepath.Join(examplesDir(t), "hello")))
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds with SOURCE_DATE_EPOCH gave %s and %s", digests[0], digests[1])
	}
}

// TestCopyFromContext copies files, a directory and a glob with owner and
// mode, honouring .strataignore, and checks the tree umoci unpacks.
func TestCopyFromContext(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, `from: ${BASE}
args: {BASE: scratch}
steps:
  - copy: [conf/*.toml, notes.txt]
    to: /etc/app/
    owner: app
  - copy: src
    to: /opt/src
    mode: "0600"
  - copy: bin/tool
    to: /usr/local/bin/
`, map[string]string{
		".strataignore":     "src/*.log\n",
		"conf/a.toml":       "a = 1\n",
		"conf/b.toml":       "b = 2\n",
		"conf/skip.ini":     "not copied\n",
		"notes.txt":         "notes\n",
		"src/main.go":       "package main\n",
		"src/sub/x.go":      "package sub\n",
		"src/debug.log":     "ignored\n",
		"bin/tool":          "#!/bin/sh\necho tool\n",
		"unrelated/big.bin": "not copied\n",
	})
	if err := os.Chmod(filepath.Join(ctx, "bin/tool"), 0o775); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "img.oci")
	mustBuild(t, nil, "--root", t.TempDir(), "--build-arg", busyboxBase(t), "-t", "c:1", "-o", "type=oci,dest="+out, ctx)
	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, nil, "umoci", "unpack", "--image", out+":c:1", bundle)
	rootfs := filepath.Join(bundle, "rootfs")
	type file struct {
		mode     os.FileMode
		uid, gid uint32
	}
	want := map[string]file{
		"etc/app/a.toml":        {0o644, 1000, 1000},
		"etc/app/b.toml":        {0o644, 1000, 1000},
		"etc/app/notes.txt":     {0o644, 1000, 1000},
		"opt/src/main.go":       {0o600, 0, 0},
		"opt/src/sub/x.go":      {0o600, 0, 0},
		"usr/local/bin/tool":    {0o755, 0, 0},
		"etc/app/skip.ini":      {},
		"opt/src/debug.log":     {},
		"opt/src/unrelated":     {},
		"usr/local/bin/big.bin": {},
	}
	for name, w := range want {
		fi, err := os.Lstat(filepath.Join(rootfs, name))
		if w.mode == 0 {
			if err == nil {
				t.Errorf("%s was copied, want it left out", name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := (file{fi.Mode().Perm(), st.Uid, st.Gid}); got != w {
			t.Errorf("%s: mode %v owner %d:%d, want %v %d:%d", name, got.mode, got.uid, got.gid, w.mode, w.uid, w.gid)
		}
	}
}

// startUntil starts cmd, its stderr piped, and returns once that stderr
// holds marker (a step printed it: the step runs): the stderr so far, and
// the pipe to read the rest from (closed when the test ends).
func startUntil(t *testing.T, cmd *exec.Cmd, marker string) (*bytes.Buffer, *os.File) {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close() })
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	var stderr bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(stderr.String(), marker) {
		n, err := pr.Read(buf)
		if err != nil {
			t.Fatalf("strata ended before printing %q: %v\n%s", marker, err, stderr.String())
		}
		stderr.Write(buf[:n])
	}
	return &stderr, pr
}

// TestInterruptedBuildLeavesNothing stops a build with SIGINT, SIGTERM or
// SIGHUP (a closed terminal) while a step runs: strata exits non-zero,
// writes no output and leaves no mount, no container state and no upper
// dir.
func TestInterruptedBuildLeavesNothing(t *testing.T) {
	requireBuildTools(t)
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) { testSignalledBuild(t, sig) })
	}
}

func testSignalledBuild(t *testing.T, sig os.Signal) {
	ctx := writeRecipe(t, `from: ${BASE}
args: {BASE: scratch}
steps:
  - run: echo step-$((1+1))-running; sleep 300
`, map[string]string{})
	root, out := t.TempDir(), filepath.Join(t.TempDir(), "img.oci")
	cmd := exec.Command(strataBin, "build", "--root", root, "--build-arg", busyboxBase(t), "-t", "i:1", "-o", "type=oci,dest="+out, ctx)
	stderr := signalBuild(t, cmd, sig, "step-2-running", out)
	if msg := stderr; !strings.Contains(msg, "strata: interrupted: the build stopped before it finished") || strings.Contains(msg, "context canceled") {
		t.Errorf("the message of an interrupted build:\n%s", msg)
	}
	assertNoLeftovers(t, root)
	// The step's cgroup is /strata/strata-PID-…, PID being strata's.
	if cg, _ := filepath.Glob(fmt.Sprintf("/sys/fs/cgroup/*/strata/strata-%d.*", cmd.Process.Pid)); len(cg) > 0 {
		t.Errorf("cgroups left behind: %v", cg)
	}
}

// TestClosedStderrStopsBuild: when what reads strata's stderr goes away
// (`strata build . 2>&1 | tee log` and a ^C that ends tee first, a `|
// head`), the build stops and cleans up as on ^C; Go's default for a
// write to a closed pipe on fd 2 killed strata outright (exit 141),
// leaving its step running and its overlay mounted.
func TestClosedStderrStopsBuild(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, `from: ${BASE}
args: {BASE: scratch}
steps:
  - run: echo step-$((1+1))-running; while true; do echo tick; sleep 0.2; done
`, map[string]string{})
	root := t.TempDir()
	cmd := exec.Command(strataBin, "build", "--root", root, "--progress", "plain", "--build-arg", busyboxBase(t), ctx)
	_, pr := startUntil(t, cmd, "step-2-running")
	pr.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 {
			t.Errorf("strata ended with %v, want exit status 1 (stopped, not killed)", err)
		}
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("strata went on building with its stderr closed")
	}
	assertNoLeftovers(t, root)
}

// signalBuild starts the build cmd, sends it sig once it has printed
// marker, and checks that it failed within 10 s and wrote no output out.
// It returns what strata printed on stderr.
func signalBuild(t *testing.T, cmd *exec.Cmd, sig os.Signal, marker, out string) string {
	t.Helper()
	stderr, pr := startUntil(t, cmd, marker)
	start := time.Now()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	io.Copy(stderr, pr)
	if err := cmd.Wait(); err == nil {
		t.Fatalf("interrupted build succeeded\n%s", stderr.String())
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("strata took %s to stop after %v", d, sig)
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an output was written: %v", err)
	}
	return stderr.String()
}

// checkMetadata checks a --metadata-file: the digests, and per step its
// position, whether it was cached, its duration and its layer.
func checkMetadata(t *testing.T, path, digest string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		ImageDigest  string `json:"image.digest"`
		ConfigDigest string `json:"containerimage.config.digest"`
		Phases       struct {
			Resolve int64 `json:"resolve_ns"`
			Steps   int64 `json:"steps_ns"`
		}
		Steps []struct {
			Pos      string
			Action   string
			Cached   bool
			Duration int64 `json:"duration_ns"`
			Timings  *struct {
				Process int64 `json:"process_ns"`
				Commit  int64 `json:"commit_ns"`
			}
			Layer *struct {
				Digest string
				Size   int64
				Added  int
			}
		}
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("metadata: %v\n%s", err, data)
	}
	if m.ImageDigest != digest || !strings.HasPrefix(m.ConfigDigest, "sha256:") {
		t.Errorf("metadata digests %q %q, want image %s", m.ImageDigest, m.ConfigDigest, digest)
	}
	if len(m.Steps) != 3 {
		t.Fatalf("metadata has %d steps, want 3:\n%s", len(m.Steps), data)
	}
	run := m.Steps[0]
	if !strings.HasSuffix(run.Pos, "strata.yaml:9") || run.Action != "run" || run.Cached || run.Duration <= 0 ||
		run.Layer == nil || !strings.HasPrefix(run.Layer.Digest, "sha256:") || run.Layer.Size <= 0 || run.Layer.Added != 1 {
		t.Errorf("metadata of the run step: %+v", run)
	}
	if run.Timings == nil || run.Timings.Process <= 0 || run.Timings.Commit <= 0 || m.Phases.Resolve <= 0 || m.Phases.Steps <= 0 {
		t.Errorf("metadata timings: step %+v, phases %+v", run.Timings, m.Phases)
	}
}

// TestKilledBuildIsCleanedUp kills strata with SIGKILL while a step with a
// secret mount runs — nothing can clean up then — and checks that the next
// build on the same root removes the container, its bundle, the mount and
// the secret the killed one left; and that strata prune does, before it
// removes snapshots the killed build's overlay may still have mounted.
func TestKilledBuildIsCleanedUp(t *testing.T) {
	requireBuildTools(t)
	for _, then := range []string{"build", "prune"} {
		t.Run(then, func(t *testing.T) { testKilledBuildIsCleanedUp(t, then) })
	}
}

func testKilledBuildIsCleanedUp(t *testing.T, then string) {
	ctx := writeRecipe(t, `from: ${BASE}
args: {BASE: scratch}
steps:
  - run: echo step-$((1+1))-running; sleep 300
    mounts: [{type: secret, id: tok, target: /run/secrets/tok}]
`, map[string]string{})
	root := t.TempDir()
	cmd := exec.Command(strataBin, "build", "--root", root, "--secret", "id=tok,env=KILLED_TOKEN", "--build-arg", busyboxBase(t), ctx)
	cmd.Env = append(os.Environ(), "KILLED_TOKEN=s3cr3t-of-a-killed-build")
	_, pr := startUntil(t, cmd, "step-2-running")
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	pr.Close()
	if entries, _ := os.ReadDir(filepath.Join(root, "runc")); len(entries) == 0 {
		t.Fatal("the killed build left no container; the test proves nothing")
	}
	secrets, _ := filepath.Glob(fmt.Sprintf("/dev/shm/strata_secret-%d.*", cmd.Process.Pid))
	if len(secrets) == 0 {
		t.Fatal("the killed build left no secret dir; the test proves nothing")
	}

	if then == "prune" {
		if r := strata(t, nil, "prune", "--root", root, "--keep-bytes", "1"); r.code != 0 {
			t.Fatalf("prune: exit %d\n%s", r.code, r.stderr)
		}
	} else {
		r := strata(t, nil, "build", "--root", root, "--build-arg", busyboxBase(t), filepath.Join(examplesDir(t), "hello"))
		if r.code != 0 {
			t.Fatalf("the next build: exit %d\n%s", r.code, r.stderr)
		}
		if !strings.Contains(r.stderr, "of a killed build") {
			t.Errorf("the next build says nothing of the killed one:\n%s", r.stderr)
		}
	}
	assertNoLeftovers(t, root)
	for _, dir := range secrets {
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("the killed build's secret is still in %s", dir)
		}
	}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		if data, _ := os.ReadFile(c); strings.Contains(string(data), "step-$((1+1))-running") {
			t.Errorf("the killed build's step still runs: %s", filepath.Dir(c))
		}
	}
}

// TestFailedBuildLeavesNoStaleIIDFile: a build that fails leaves no
// --iidfile or --metadata-file of the build before it, whose digest a
// script would take for this one's (buildx removes its iidfile first).
func TestFailedBuildLeavesNoStaleIIDFile(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, "from: ${BASE}\nargs: {BASE: scratch, CODE: \"0\"}\nsteps:\n  - run: exit ${CODE}\n", map[string]string{})
	dir := t.TempDir()
	iid, meta := filepath.Join(dir, "iid"), filepath.Join(dir, "meta.json")
	args := func(code string) []string {
		return []string{"build", "--root", t.TempDir(), "--build-arg", busyboxBase(t), "--build-arg", "CODE=" + code,
			"--iidfile", iid, "--metadata-file", meta, ctx}
	}
	if r := strata(t, nil, args("0")...); r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	for _, f := range []string{iid, meta} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("the good build wrote no %s: %v", f, err)
		}
	}
	if r := strata(t, nil, args("3")...); r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	for _, f := range []string{iid, meta} {
		if b, err := os.ReadFile(f); err == nil {
			t.Errorf("the failed build left %s of the build before it: %s", f, b)
		}
	}
}

// TestOneCacheAtTwoTargets: a step that mounts one cache id at two
// targets sees one dir at both, and finishes (it waited for itself on the
// cache's lock, for good, and ^C did not stop it).
func TestOneCacheAtTwoTargets(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, `from: ${BASE}
args: {BASE: scratch}
steps:
  - run: echo shared > /a/f && cat /b/f > /seen
    mounts:
      - {type: cache, id: shared, target: /a}
      - {type: cache, id: shared, target: /b}
`, map[string]string{})
	cmd := exec.Command(strataBin, "build", "--root", t.TempDir(), "--build-arg", busyboxBase(t), "-o", "type=oci,dest="+filepath.Join(t.TempDir(), "out"), ctx)
	done := make(chan result, 1)
	go func() { done <- runAsync(cmd) }()
	select {
	case r := <-done:
		if r.code != 0 {
			t.Fatalf("exit %d\n%s", r.code, r.stderr)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("the build still ran after 60 s: the step waits on its own cache")
	}
}

// TestOutputFilesThroughLinks: --iidfile and --metadata-file given as
// symbolic links are written through them, as buildx does: the file a
// link leads to gets the new digest and the link stays; a link to a
// process's stdout (as /dev/stdout is) gets the digest in place. A failed
// build removes the link's target, not the link.
func TestOutputFilesThroughLinks(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, "from: ${BASE}\nargs: {BASE: scratch, CODE: \"0\"}\nsteps:\n  - run: exit ${CODE}\n", map[string]string{})
	dir := t.TempDir()
	iid, meta := filepath.Join(dir, "iid"), filepath.Join(dir, "meta.json")
	for _, f := range []string{iid, meta} {
		if err := os.WriteFile(f+".real", []byte("sha256:old"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Base(f)+".real", f); err != nil {
			t.Fatal(err)
		}
	}
	stdout := filepath.Join(dir, "stdout")
	if err := os.Symlink("/proc/self/fd/1", stdout); err != nil {
		t.Fatal(err)
	}
	args := func(code, iid string) []string {
		return []string{"build", "--root", t.TempDir(), "--build-arg", busyboxBase(t), "--build-arg", "CODE=" + code,
			"--iidfile", iid, "--metadata-file", meta, ctx}
	}
	r := strata(t, nil, args("0", iid)...)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	digest := strings.TrimSpace(r.stdout)
	for _, f := range []string{iid, meta} {
		if fi, err := os.Lstat(f); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is no longer a link: %v %v", f, fi, err)
		}
		if b, err := os.ReadFile(f + ".real"); err != nil || !strings.Contains(string(b), digest) {
			t.Errorf("%s.real holds %q (%v), want the digest %s", f, b, err, digest)
		}
	}

	r = strata(t, nil, args("0", stdout)...)
	if r.code != 0 {
		t.Fatalf("--iidfile to stdout: exit %d\n%s", r.code, r.stderr)
	}
	if want := digest + digest + "\n"; r.stdout != want {
		t.Errorf("--iidfile to stdout: stdout %q, want %q", r.stdout, want)
	}
	if fi, err := os.Lstat(stdout); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("%s is no longer a link: %v %v", stdout, fi, err)
	}

	if r := strata(t, nil, args("3", iid)...); r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	for _, f := range []string{iid, meta} {
		if b, err := os.ReadFile(f + ".real"); err == nil {
			t.Errorf("the failed build left %s.real of the build before it: %s", f, b)
		}
		if _, err := os.Lstat(f); err != nil {
			t.Errorf("the failed build removed the link %s: %v", f, err)
		}
	}
}

// TestFileDestsRefusedBeforeTheBuild: file destinations that pass a
// glance but cannot be written, or would overwrite one another, fail
// before any step runs: a name ending in "/", a ".." after a directory
// that does not exist, and the iid file naming the docker archive.
func TestFileDestsRefusedBeforeTheBuild(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, "from: ${BASE}\nargs: {BASE: scratch}\nsteps:\n  - run: echo step-ran\n", map[string]string{})
	dir := t.TempDir()
	archive := filepath.Join(dir, "img.tar")
	if err := os.WriteFile(archive, []byte("an archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"archive ends in /", []string{"-o", "type=docker,dest=" + dir + "/slash.tar/"}, "slash.tar/ ends in /"},
		{"iidfile ends in /", []string{"--iidfile", dir + "/slash.iid/"}, "slash.iid/ ends in /"},
		{"missing dir before ..", []string{"-o", "type=docker,dest=" + dir + "/x/../same2.tar"}, "goes through " + dir + "/x, which is not a directory"},
		{"iidfile is the archive", []string{"-o", "type=docker,dest=" + archive, "--iidfile", archive},
			"--iidfile and -o type=docker,dest=" + archive + " name the same file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"build", "--root", t.TempDir(), "--build-arg", busyboxBase(t), "--progress", "plain"}, tc.args...)
			r := strata(t, nil, append(args, ctx)...)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "step-ran") {
				t.Errorf("exit %d, want a failure before the build saying %q:\n%s", r.code, tc.want, r.stderr)
			}
		})
	}
	if b, _ := os.ReadFile(archive); string(b) != "an archive" {
		t.Errorf("the archive was replaced: %q", b)
	}
	for _, p := range []string{"slash.tar", "slash.iid", "same2.tar", "x"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
			t.Errorf("%s was written", p)
		}
	}
}

// TestNohupBuildIgnoresHangup: a build started under nohup (SIGHUP
// ignored) goes on when its terminal closes, as it did before strata
// stopped builds on SIGHUP.
func TestNohupBuildIgnoresHangup(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, "from: ${BASE}\nargs: {BASE: scratch}\nsteps:\n  - run: echo step-$((1+1))-running; sleep 1\n", map[string]string{})
	root, out := t.TempDir(), filepath.Join(t.TempDir(), "img.oci")
	cmd := exec.Command("nohup", strataBin, "build", "--root", root, "--build-arg", busyboxBase(t), "-t", "i:1", "-o", "type=oci,dest="+out, ctx)
	stderr, pr := startUntil(t, cmd, "step-2-running")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	io.Copy(stderr, pr)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the nohup'd build stopped on SIGHUP: %v\n%s", err, stderr)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("no output: %v", err)
	}
}

// TestOutputFilesKeepTheirMode: --iidfile and --metadata-file, removed
// before the build (a failure must not leave them), come back with the
// mode and owner the files had, as the archive's dest does.
func TestOutputFilesKeepTheirMode(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, "from: scratch\nsteps:\n  - file: /f\n    content: f\n", map[string]string{})
	dir := t.TempDir()
	iid, meta := filepath.Join(dir, "iid"), filepath.Join(dir, "meta.json")
	for f, mode := range map[string]os.FileMode{iid: 0o600, meta: 0o640} {
		if err := os.WriteFile(f, []byte("old"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(f, 1000, 1000); err != nil {
			t.Fatal(err)
		}
	}
	mustBuild(t, nil, "--root", t.TempDir(), "--iidfile", iid, "--metadata-file", meta, ctx)
	for f, mode := range map[string]os.FileMode{iid: 0o600, meta: 0o640} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != mode || st.Uid != 1000 || st.Gid != 1000 {
			t.Errorf("%s: mode %v owner %d:%d, want %v 1000:1000", filepath.Base(f), fi.Mode().Perm(), st.Uid, st.Gid, mode)
		}
	}
}

// TestClosedStdoutEndsOtherCommandsQuietly: a command other than build
// whose reader goes away (`strata diff A B | head -1`, `strata schema |
// true`) ends of SIGPIPE, as command line tools do, not with an error and
// the bad-usage exit code.
func TestClosedStdoutEndsOtherCommandsQuietly(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr.Close() // gone before strata writes
	var stderr bytes.Buffer
	cmd := exec.Command(strataBin, "schema")
	cmd.Stdout, cmd.Stderr = pw, &stderr
	err = cmd.Run()
	pw.Close()
	var exit *exec.ExitError
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !errors.As(err, &exit) || !ws.Signaled() || ws.Signal() != syscall.SIGPIPE || stderr.Len() > 0 {
		t.Errorf("strata schema into a closed pipe: %v, stderr %q; want it killed by SIGPIPE, quietly", err, stderr.String())
	}
}

// TestDigestWriteFailureFails: a build whose digest cannot be written to
// stdout (a full disk, a reader gone: | true under pipefail) fails, exit 1,
// saying the image was built; it exited 0 and a script got no digest.
func TestDigestWriteFailureFails(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, "from: ${BASE}\nargs: {BASE: scratch}\nsteps:\n  - run: echo hi > /hi\n", map[string]string{})
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip("no /dev/full:", err)
	}
	defer full.Close()
	var stderr bytes.Buffer
	cmd := exec.Command(strataBin, "build", "-q", "--root", t.TempDir(), "--build-arg", busyboxBase(t), ctx)
	cmd.Stdout, cmd.Stderr = full, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(stderr.String(), "the image was built, but writing its digest to stdout failed") {
		t.Errorf("strata build -q > /dev/full: %v\n%s\nwant exit 1, saying the digest could not be written", err, stderr.String())
	}
}
