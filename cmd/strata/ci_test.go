package main_test

// strata in CI: strata's own image, built by strata from .ci/image, loaded
// into a private dockerd and run as CI runners run it — a fresh container
// per job, its own state, sharing nothing but a registry (TLS, htpasswd
// auth, credentials mounted as a platform's secret would be).

import (
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/internal/testutil"
)

// ciEpoch is the SOURCE_DATE_EPOCH of every build the CI tests compare.
const ciEpoch = "SOURCE_DATE_EPOCH=1700000000"

// ciImage is the name strata's image is loaded under in the test's dockerd.
const ciImage = "strata-ci/strata:test"

// ciRig is what the CI tests share: one registry, one dockerd, strata's
// image loaded into it, and the docker run flags a runner gets.
type ciRig struct {
	reg     *testutil.Registry
	denv    []string // DOCKER_HOST of the private dockerd
	busybox string   // the base of examples/hello, in reg
	priv    []string // docker run flags giving a runner what strata needs
}

// TestCIRunners builds strata's image with strata and runs it as CI
// runners: a build inside it gives the digest the host binary gives; a
// second runner with its own state builds from the first one's registry
// cache without running a step or uploading a layer; four runners at once
// write one cache repository and one tag, and a fifth reads every entry.
func TestCIRunners(t *testing.T) {
	requireBuildTools(t)
	rig := &ciRig{reg: testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, Auth: true})}
	rig.denv = []string{"DOCKER_HOST=" + testutil.StartDockerd(t)}
	rig.busybox = rig.reg.Addr + "/library/busybox:latest"
	bb := testutil.BusyboxLayout(t)
	run(t, nil, "skopeo", "copy", "--dest-authfile", filepath.Join(rig.reg.DockerConfig, "config.json"),
		"--dest-cert-dir", rig.reg.CertDir, "oci:"+bb+":"+testutil.BusyboxTag, "docker://"+rig.busybox)

	if !t.Run("image", rig.testImage) {
		return
	}
	rig.priv = runnerPrivileges(t, rig.denv)
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if flags := strings.Join(narrowPrivileges, " "); !strings.Contains(string(readme), flags) {
		t.Errorf("README.md does not name the docker flags runners get where --privileged fails: %s", flags)
	}
	if !t.Run("hello", rig.testHello) {
		return
	}
	t.Run("two-runners", rig.testTwoRunners)
	t.Run("four-runners", rig.testFourRunners)
}

// testImage builds strata's image twice, each time on a fresh state root:
// the same digest; the first build loads it into the dockerd.
func (c *ciRig) testImage(t *testing.T) {
	ctx := t.TempDir()
	recipe, err := os.ReadFile(filepath.Join("..", "..", ".ci", "image", "strata.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctx, "strata.yaml"), recipe, 0o644); err != nil {
		t.Fatal(err)
	}
	staticStrata(t, filepath.Join(ctx, "strata"))
	base := "BASE=oci-layout://" + testutil.DebianLayout(t) + ":" + testutil.DebianTag

	var digests []string
	var layout string
	for i, extra := range [][]string{{"--load"}, nil} {
		layout = filepath.Join(t.TempDir(), "strata.oci")
		args := append([]string{"--root", t.TempDir(), "--build-arg", base, "-t", ciImage, "-o", "type=oci,dest=" + layout}, extra...)
		start := time.Now()
		digests = append(digests, mustBuild(t, c.denv, append(args, ctx)...))
		t.Logf("strata's image, build %d on a fresh root: %s in %s", i+1, digests[i], time.Since(start).Round(100*time.Millisecond))
	}
	if digests[0] != digests[1] {
		t.Fatalf("two builds of strata's image: %s and %s, want one digest", digests[0], digests[1])
	}
	img := layoutImage(t, layout, ciImage)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var compressed int64
	var sizes []string
	for _, l := range m.Layers {
		compressed += l.Size
		sizes = append(sizes, fmt.Sprintf("%.1f", float64(l.Size)/(1<<20)))
	}
	size, err := strconv.ParseInt(strings.TrimSpace(run(t, c.denv, testutil.DockerPath, "image", "inspect", "--format", "{{.Size}}", ciImage)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("strata's image: layers of %s MiB, %.1f MiB compressed, %.1f MiB unpacked in docker",
		strings.Join(sizes, " + "), float64(compressed)/(1<<20), float64(size)/(1<<20))
	if len(m.Layers) != 3 {
		t.Errorf("strata's image has %d layers, want 3: the base's, runc and the CA certificates, strata", len(m.Layers))
	}

	var cfg struct{ Config struct{ Entrypoint []string } }
	if err := json.Unmarshal([]byte(run(t, c.denv, testutil.DockerPath, "image", "inspect", "--format", "{{json .}}", ciImage)), &cfg); err != nil {
		t.Fatal(err)
	}
	if want := []string{"/usr/local/bin/strata"}; !slices.Equal(cfg.Config.Entrypoint, want) {
		t.Errorf("entrypoint %q, want %q", cfg.Config.Entrypoint, want)
	}
	for _, check := range []struct {
		args []string
		want string
	}{
		{[]string{ciImage, "version"}, "strata "},
		{[]string{"--entrypoint", "runc", ciImage, "--version"}, "runc version"},
		{[]string{"--entrypoint", "/bin/sh", ciImage, "-c", "ls /etc/ssl/certs/ca-certificates.crt"}, "ca-certificates.crt"},
	} {
		out := run(t, c.denv, testutil.DockerPath, append([]string{"run", "--rm", "--network", "none"}, check.args...)...)
		if !strings.Contains(out, check.want) {
			t.Errorf("docker run %s printed %q, want %q", strings.Join(check.args, " "), out, check.want)
		}
	}
}

// staticStrata builds strata with CGO_ENABLED=0 into dest and checks that
// it is statically linked, so that it runs on any base image.
func staticStrata(t *testing.T, dest string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", dest, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build (CGO_ENABLED=0): %v\n%s", err, out)
	}
	f, err := elf.Open(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s asks for a dynamic loader: not statically linked", dest)
		}
	}
}

// narrowPrivileges are the docker run flags README.md names as all strata
// needs in a container besides its state volume.
var narrowPrivileges = []string{"--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
	"--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
	"-v", "/sys/fs/cgroup:/sys/fs/cgroup"}

// runnerPrivileges is what a runner container gets: --privileged where
// this host can give it; else the narrower set README.md names, which is
// all strata needs (docker's --privileged asks for every capability, and
// fails on a host whose own capability bounding set lacks one).
func runnerPrivileges(t *testing.T, denv []string) []string {
	t.Helper()
	cmd := exec.Command(testutil.DockerPath, "run", "--rm", "--privileged", "--network", "none", "--entrypoint", "/bin/true", ciImage)
	cmd.Env = append(os.Environ(), denv...)
	out, err := cmd.CombinedOutput()
	if err == nil {
		return []string{"--privileged"}
	}
	narrow := narrowPrivileges
	t.Logf("docker run --privileged fails on this host (%s); runners get %s instead",
		strings.TrimSpace(string(out)), strings.Join(narrow, " "))
	return narrow
}

// runner runs strata's image as a CI job runs it: a fresh container (its
// state, /var/lib/strata, a fresh volume), the host's network, the
// registry's credentials and CA mounted read-only as a platform's secrets
// are, the build context mounted at /src/NAME. It is safe for concurrent
// use; errors are in the result.
func (c *ciRig) runner(contexts map[string]string, args ...string) result {
	dargs := append([]string{"run", "--rm", "--network", "host"}, c.priv...)
	dargs = append(dargs,
		"-e", ciEpoch, "-e", "DOCKER_CONFIG=/run/secrets/registry",
		"--mount", "type=bind,readonly,source="+c.reg.DockerConfig+",target=/run/secrets/registry",
		"--mount", "type=bind,readonly,source="+c.reg.CertDir+",target=/etc/docker/certs.d/"+c.reg.Addr,
		"-w", "/src")
	for name, dir := range contexts {
		dargs = append(dargs, "--mount", "type=bind,readonly,source="+dir+",target=/src/"+name)
	}
	cmd := exec.Command(testutil.DockerPath, append(append(dargs, ciImage), args...)...)
	cmd.Env = append(os.Environ(), c.denv...)
	return runAsync(cmd)
}

// mustRunner is runner for one build that must succeed; it returns the
// digest, checking that stdout holds nothing else and that the log is
// what README.md promises a CI log.
func (c *ciRig) mustRunner(t *testing.T, contexts map[string]string, args ...string) (digest string, r result) {
	t.Helper()
	start := time.Now()
	r = c.runner(contexts, append([]string{"build", "--progress", "plain"}, args...)...)
	if r.code != 0 {
		t.Fatalf("runner: strata build %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	digest = strings.TrimSpace(r.stdout)
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(digest) {
		t.Fatalf("runner: stdout is not only a digest: %q", r.stdout)
	}
	checkCILog(t, r.stderr, digest, args)
	t.Logf("runner built %s in %s (container included)", digest, time.Since(start).Round(100*time.Millisecond))
	return digest, r
}

var ciLogLine = regexp.MustCompile(`^ *\d+\.\d\ds \S`)

// checkCILog checks a plain log: every line starts with the seconds since
// the build started, no line holds a control character, and the last
// names the digest and every reference pushed.
func checkCILog(t *testing.T, log, digest string, args []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(log, "\n"), "\n")
	for _, line := range lines {
		if !ciLogLine.MatchString(line) {
			t.Errorf("log line without a time: %q", line)
		}
		if i := strings.IndexFunc(line, unicode.IsControl); i >= 0 {
			t.Errorf("log line with control character %U: %q", []rune(line[i:])[0], line)
		}
	}
	want := "image " + digest
	var tags []string
	for i, a := range args {
		if a == "-t" && i+1 < len(args) {
			tags = append(tags, args[i+1])
		}
	}
	if slices.Contains(args, "--push") {
		want += " pushed as " + strings.Join(tags, ", ")
	}
	if last := lines[len(lines)-1]; !strings.HasSuffix(last, "s "+want) {
		t.Errorf("last log line %q, want it to be %q", last, want)
	}
}

var ciStepLine = regexp.MustCompile(`^ *[\d.]+s \[\d+/\d+\] \S+:\d+ (run|copy|file): (cached|done)`)

// stepsRun counts the file-changing steps a plain log says ran, and those
// it says were cached.
func stepsRun(log string) (ran, cached int) {
	for _, line := range strings.Split(log, "\n") {
		if m := ciStepLine.FindStringSubmatch(line); m != nil {
			if m[2] == "cached" {
				cached++
			} else {
				ran++
			}
		}
	}
	return ran, cached
}

// testHello builds examples/hello in a runner and on the host, pushing
// both: one digest.
func (c *ciRig) testHello(t *testing.T) {
	examples := map[string]string{"examples": examplesDir(t)}
	ref := c.reg.Addr + "/ci/hello"
	inside, _ := c.mustRunner(t, examples, "--build-arg", "BASE="+c.busybox, "-t", ref+":runner", "--push", "examples/hello")
	host := mustBuild(t, []string{ciEpoch, "DOCKER_CONFIG=" + c.reg.DockerConfig, "SSL_CERT_FILE=" + c.reg.CAFile},
		"--root", t.TempDir(), "--build-arg", "BASE="+c.busybox, "-t", ref+":host", "--push", filepath.Join(examplesDir(t), "hello"))
	if inside != host {
		t.Errorf("examples/hello built in strata's image: %s; by the host binary: %s", inside, host)
	}
	for _, tag := range []string{"runner", "host"} {
		if got := c.image(t, ref+":"+tag).digest(t); got != inside {
			t.Errorf("%s:%s is %s, want %s", ref, tag, got, inside)
		}
	}
}

// testTwoRunners: runner A builds examples/hello with --cache-to; runner
// B, with its own state, builds it with --cache-from: no step runs, no
// layer blob is uploaded, the same image.
func (c *ciRig) testTwoRunners(t *testing.T) {
	examples := map[string]string{"examples": examplesDir(t)}
	cacheRepo := c.reg.Addr + "/cache/hello"
	job := func(tag string) []string {
		return []string{"--build-arg", "BASE=" + c.busybox, "--cache-from", cacheRepo, "--cache-to", cacheRepo,
			"-t", c.reg.Addr + "/ci/app:" + tag, "--push", "examples/hello"}
	}
	before := len(c.reg.Uploads(t))
	a, ra := c.mustRunner(t, examples, job("a")...)
	mid := len(c.reg.Uploads(t))
	b, rb := c.mustRunner(t, examples, job("b")...)
	uploads := c.reg.Uploads(t)

	if a != b {
		t.Errorf("runner B built %s, runner A %s", b, a)
	}
	if ran, cached := stepsRun(ra.stderr); ran != 2 || cached != 0 {
		t.Errorf("runner A: %d steps ran, %d cached; want 2 and 0:\n%s", ran, cached, ra.stderr)
	}
	if ran, cached := stepsRun(rb.stderr); ran != 0 || cached != 2 {
		t.Errorf("runner B: %d steps ran, %d cached; want 0 and 2:\n%s", ran, cached, rb.stderr)
	}
	layers := c.image(t, c.reg.Addr+"/ci/app:b").layerDigests(t)
	count := func(ups []testutil.Upload) int {
		n := 0
		for _, u := range ups {
			if slices.Contains(layers, u.Digest) {
				n++
			}
		}
		return n
	}
	if n := count(uploads[before:mid]); n == 0 {
		t.Errorf("runner A uploaded no layer blob: the count proves nothing (%v)", uploads[before:mid])
	}
	if n := count(uploads[mid:]); n != 0 {
		t.Errorf("runner B uploaded %d layer blobs, want 0: %v", n, uploads[mid:])
	}
	t.Logf("blob uploads: runner A %d (%d layers), runner B %d (%d layers)",
		mid-before, count(uploads[before:mid]), len(uploads)-mid, count(uploads[mid:]))
}

// raceRecipe makes, in every runner, one layer the same everywhere, one
// different in each runner under the same cache key (the step's inputs are
// the same, its output is not), and one whose key differs per runner.
const raceRecipe = `args: {BASE: scratch}
from: ${BASE}
steps:
  - run: echo shared > /shared
  - run: cat /proc/sys/kernel/random/uuid > /runner-id
  - copy: greeting.txt
    to: /greeting.txt
`

// testFourRunners runs four runners at once, writing one cache repository
// (--cache-from and --cache-to) and pushing one tag: all succeed; the tag
// is one runner's complete image; every cache entry is whole (its manifest,
// config and layer agree and every blob reads back with its digest); a
// fifth runner builds with every step cached.
func (c *ciRig) testFourRunners(t *testing.T) {
	ctx := writeRecipe(t, raceRecipe, map[string]string{"greeting.txt": "hello from a runner\n"})
	contexts := map[string]string{"race": ctx}
	cacheRepo := c.reg.Addr + "/cache/race"
	tag := c.reg.Addr + "/ci/race:latest"
	job := []string{"build", "--progress", "plain", "--build-arg", "BASE=" + c.busybox,
		"--cache-from", cacheRepo, "--cache-to", cacheRepo, "-t", tag, "--push", "race"}

	results := make(chan result, 4)
	start := time.Now()
	for range 4 {
		go func() { results <- c.runner(contexts, job...) }()
	}
	var digests []string
	for range 4 {
		r := <-results
		if r.code != 0 {
			t.Errorf("a runner failed: exit %d\n%s", r.code, r.stderr)
			continue
		}
		digests = append(digests, strings.TrimSpace(r.stdout))
		checkCILog(t, r.stderr, digests[len(digests)-1], job)
	}
	t.Logf("4 runners at once: %s; digests %v", time.Since(start).Round(100*time.Millisecond), digests)
	if t.Failed() {
		return
	}
	won := c.image(t, tag)
	if d := won.digest(t); !slices.Contains(digests, d) {
		t.Errorf("%s is %s, none of the runners' %v", tag, d, digests)
	}
	won.validate(t, tag)
	entries := c.checkCacheEntries(t, cacheRepo)

	fifth, r := c.mustRunner(t, contexts, "--build-arg", "BASE="+c.busybox, "--cache-from", cacheRepo, "race")
	if ran, cached := stepsRun(r.stderr); ran != 0 || cached != 3 {
		t.Errorf("the fifth runner: %d steps ran, %d cached; want 0 and 3:\n%s", ran, cached, r.stderr)
	}
	if !slices.Contains(digests, fifth) {
		t.Errorf("the fifth runner built %s from the cache, none of the runners' %v", fifth, digests)
	}
	t.Logf("the cache repository holds %d entries, all whole", entries)
}

// checkCacheEntries reads every tag of a registry cache repository: each
// must be the entry of the key it is tagged with, its config's entry must
// name the layer its manifest holds, and every blob must read back with
// its digest. It returns how many there are.
func (c *ciRig) checkCacheEntries(t *testing.T, repo string) int {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(r, c.remote()...)
	if err != nil {
		t.Fatalf("listing %s: %v", repo, err)
	}
	for _, tg := range tags {
		ref := repo + ":" + tg
		img := c.image(t, ref)
		img.validate(t, ref)
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		var e cache.Entry
		if err := json.Unmarshal([]byte(cf.Config.Labels[cache.EntryLabel]), &e); err != nil {
			t.Errorf("%s: entry label: %v", ref, err)
			continue
		}
		if want := strings.Replace(e.Key, ":", "-", 1); tg != want {
			t.Errorf("%s holds the entry of key %s", ref, e.Key)
		}
		layers := img.layerDigests(t)
		switch {
		case e.Layer == nil && len(layers) != 0, e.Layer != nil && (len(layers) != 1 || layers[0] != e.Layer.Digest):
			t.Errorf("%s: mixed entry: its config names layer %+v, its manifest holds %v", ref, e.Layer, layers)
		}
	}
	return len(tags)
}

// remoteImage is an image in the rig's registry.
type remoteImage struct{ v1.Image }

func (c *ciRig) remote() []remote.Option {
	return []remote.Option{remote.WithAuth(&authn.Basic{Username: c.reg.User, Password: c.reg.Password}),
		remote.WithTransport(c.reg.Transport())}
}

func (c *ciRig) image(t *testing.T, ref string) remoteImage {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, c.remote()...)
	if err != nil {
		t.Fatalf("reading %s: %v", ref, err)
	}
	return remoteImage{img}
}

func (i remoteImage) digest(t *testing.T) string {
	t.Helper()
	d, err := i.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func (i remoteImage) layerDigests(t *testing.T) []string {
	t.Helper()
	m, err := i.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range m.Layers {
		out = append(out, l.Digest.String())
	}
	return out
}

// validate reads every blob of the image and checks its digest, and the
// diffIDs the config lists.
func (i remoteImage) validate(t *testing.T, ref string) {
	t.Helper()
	if err := validate.Image(i.Image); err != nil {
		t.Errorf("%s is not whole: %v", ref, err)
	}
}
