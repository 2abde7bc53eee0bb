package main_test

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stratabuild/strata/internal/testutil"
)

var updateMessages = flag.Bool("update", false, "rewrite testdata/messages/*.golden")

// normalize replaces what differs between runs: temp paths and ports.
func normalize(s string, paths map[string]string) string {
	for p, name := range paths {
		s = strings.ReplaceAll(s, p, name)
	}
	s = regexp.MustCompile(`127\.0\.0\.1:\d+`).ReplaceAllString(s, "127.0.0.1:PORT")
	s = regexp.MustCompile(`/tmp/[^ :"]*`).ReplaceAllString(s, "TMP")
	return s
}

// TestUserFacingMessages runs strata as a user would into each mistake
// and compares what it prints (the lines that start with the recipe's
// name or "strata:") with testdata/messages/NAME.golden (-update rewrites
// them): the cause in plain words, the input it is about, the fix.
func TestUserFacingMessages(t *testing.T) {
	requireBuildTools(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{})
	authReg := testutil.StartRegistry(t, testutil.RegistryOptions{TLS: true, Auth: true})
	base := busyboxBase(t)
	noCreds := t.TempDir()
	wrongCreds := wrongCredentials(t, authReg.Addr)
	for _, tc := range []struct {
		name   string
		recipe string
		files  map[string]string
		args   []string
		env    []string
		code   int
	}{
		{name: "undefined-name", code: 2,
			recipe: "args: {BASE: scratch, GREETING: hello}\nfrom: ${BASE}\nsteps:\n  - run: echo ${GREETNG} > /greeting\n",
			args:   []string{"build", "--build-arg", base}},
		{name: "missing-sources", code: 2,
			recipe: "from: scratch\nsteps:\n  - copy: [app.conf, static/, main.go]\n    to: /app/\n",
			files:  map[string]string{"main.go": "package main\n"},
			args:   []string{"validate"}},
		{name: "unknown-tag", code: 2,
			recipe: "from: " + reg.Addr + "/library/debian:bookworm\nsteps:\n  - run: \"true\"\n",
			args:   []string{"build"}},
		{name: "unreachable-registry", code: 1,
			recipe: "from: 127.0.0.1:1/library/debian:bookworm\nsteps:\n  - run: \"true\"\n",
			args:   []string{"build"}},
		{name: "missing-credentials", code: 1,
			recipe: "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: \"true\"\n",
			args:   []string{"build", "--build-arg", base, "--insecure-registry", authReg.Addr, "-t", authReg.Addr + "/app/x:1", "--push"},
			env:    []string{"DOCKER_CONFIG=" + noCreds}},
		{name: "wrong-credentials", code: 1,
			recipe: "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: \"true\"\n",
			args:   []string{"build", "--build-arg", base, "--insecure-registry", authReg.Addr, "-t", authReg.Addr + "/app/x:1", "--push"},
			env:    []string{"DOCKER_CONFIG=" + wrongCreds}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range tc.files {
				files[k] = v
			}
			ctx := writeRecipe(t, tc.recipe, files)
			r := strata(t, append([]string{"SOURCE_DATE_EPOCH="}, tc.env...), append(append(tc.args, "--root", t.TempDir()), ctx)...)
			if tc.args[0] == "validate" {
				r = strata(t, tc.env, append(tc.args, ctx)...)
			}
			if r.code != tc.code {
				t.Errorf("exit %d, want %d\n%s", r.code, tc.code, r.stderr)
			}
			var lines []string
			for _, l := range strings.Split(r.stderr, "\n") {
				if strings.HasPrefix(l, ctx) || strings.HasPrefix(l, "strata:") || strings.HasPrefix(l, "  ") && len(lines) > 0 {
					lines = append(lines, l)
				}
			}
			got := normalize(strings.Join(lines, "\n")+"\n", map[string]string{ctx: "CTX", noCreds: "NOCONFIG", wrongCreds: "CONFIG"})
			for _, bad := range []string{"map[", "statat", "context canceled", "pushing: pushing", "pulling X: pulling"} {
				if strings.Contains(got, bad) {
					t.Errorf("the message holds %q:\n%s", bad, got)
				}
			}
			golden := filepath.Join("testdata", "messages", tc.name+".golden")
			if *updateMessages {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("message (want %s):\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

// TestRefusedPushStopsTheBuild: with --push, credentials the registry
// refuses for the first layer's upload (made while later steps run) stop
// the build then, saying so, rather than after its last step.
func TestRefusedPushStopsTheBuild(t *testing.T) {
	requireBuildTools(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{Auth: true})
	wrongCreds := wrongCredentials(t, reg.Addr)
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: echo a > /a\n  - run: sleep 60; echo b > /b\n", map[string]string{})
	start := time.Now()
	r := strata(t, []string{"DOCKER_CONFIG=" + wrongCreds}, "build", "--root", t.TempDir(), "--build-arg", busyboxBase(t),
		"--progress", "plain", "-t", reg.Addr+"/app/x:1", "--push", ctx)
	took := time.Since(start)
	if r.code != 1 || !strings.Contains(r.stderr, "strata: --push: "+reg.Addr+"/app/x: the credentials for "+reg.Addr) || !strings.Contains(r.stderr, "were refused (401 Unauthorized)") {
		t.Errorf("exit %d, want 1 and the refusal:\n%s", r.code, r.stderr)
	}
	if took > 30*time.Second {
		t.Errorf("the build took %s: it ran its 60 s step after the registry refused the credentials", took.Round(time.Second))
	}
}

// TestUnreadableCacheFromWarnedOnce: a --cache-from registry refusing the
// credentials is warned of once, in the progress's own words, and each
// step's miss says the cache could not be read; the build goes on.
func TestUnreadableCacheFromWarnedOnce(t *testing.T) {
	requireBuildTools(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{Auth: true})
	wrongCreds := wrongCredentials(t, reg.Addr)
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: echo a > /a\n  - run: echo b > /b\n  - run: echo c > /c\n", map[string]string{})
	r := strata(t, []string{"DOCKER_CONFIG=" + wrongCreds}, "build", "--root", t.TempDir(), "--build-arg", busyboxBase(t),
		"--progress", "plain", "--cache-from", reg.Addr+"/app/cache", ctx)
	warning := "warning: --cache-from " + reg.Addr + "/app/cache cannot be read; the build goes on without it (err: "
	if r.code != 0 || strings.Count(r.stderr, warning) != 1 || strings.Count(r.stderr, "cache miss: --cache-from "+reg.Addr+"/app/cache could not be read") != 3 ||
		strings.Contains(r.stderr, "level=WARN") {
		t.Errorf("exit %d, want 0, one warning %q and three misses saying the cache could not be read:\n%s", r.code, warning, r.stderr)
	}
}

// TestBrokenCacheEntryMissesAlone: one entry of a --cache-from that is
// not whole (a CI cache restored with a truncated file) is a miss of its
// step only; the store's other entries still hit.
func TestBrokenCacheEntryMissesAlone(t *testing.T) {
	requireBuildTools(t)
	dir := filepath.Join(t.TempDir(), "cache")
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: echo a > /a\n  - run: echo b > /b\n  - run: echo c > /c\n", map[string]string{})
	if r := strata(t, nil, "build", "--root", t.TempDir(), "--build-arg", busyboxBase(t), "--cache-to", "type=local,dest="+dir, ctx); r.code != 0 {
		t.Fatalf("filling the cache: exit %d\n%s", r.code, r.stderr)
	}
	entries, _ := filepath.Glob(filepath.Join(dir, "entries", "*.json"))
	broken := 0
	for _, e := range entries {
		if data, err := os.ReadFile(e); err == nil && strings.Contains(string(data), `strata.yaml::0"`) {
			if err := os.WriteFile(e, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			broken++
		}
	}
	if broken != 1 {
		t.Fatalf("%d entries of the first step among %d", broken, len(entries))
	}
	r := strata(t, nil, "build", "--root", t.TempDir(), "--build-arg", busyboxBase(t), "--progress", "plain", "--cache-from", "type=local,src="+dir, ctx)
	if r.code != 0 || strings.Count(r.stderr, "cache hit in local cache "+dir) != 2 || !strings.Contains(r.stderr, "its entry could not be read") {
		t.Errorf("exit %d, want 0, the first step run (its entry could not be read) and the two others hit:\n%s", r.code, r.stderr)
	}
}

// TestRefusedPushAfterTheSteps: credentials refused once the last step is
// done (a short one, or a cached build with one new layer, the usual CI
// case) are named as when refused during the steps, not lost behind the
// "context canceled" of the push they stopped.
func TestRefusedPushAfterTheSteps(t *testing.T) {
	requireBuildTools(t)
	reg := testutil.StartRegistry(t, testutil.RegistryOptions{Auth: true, TLS: true})
	wrongCreds := wrongCredentials(t, reg.Addr)
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: echo a > /a\n", map[string]string{})
	for i := range 3 {
		r := strata(t, []string{"DOCKER_CONFIG=" + wrongCreds, "SSL_CERT_FILE=" + reg.CAFile}, "build", "--root", t.TempDir(), "--build-arg", busyboxBase(t),
			"--progress", "plain", "-t", reg.Addr+"/app/x:1", "--push", ctx)
		if r.code != 1 || !strings.Contains(r.stderr, "the credentials for "+reg.Addr) || !strings.Contains(r.stderr, "were refused (401 Unauthorized)") ||
			strings.Contains(r.stderr, "context canceled") {
			t.Errorf("build %d: exit %d, want 1 and the refusal alone:\n%s", i, r.code, r.stderr)
		}
	}
}

// wrongCredentials returns a DOCKER_CONFIG dir whose config.json holds
// credentials for registry that it refuses (user:wrong).
func wrongCredentials(t *testing.T, registry string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"),
		[]byte(`{"auths":{"`+registry+`":{"auth":"dXNlcjp3cm9uZw=="}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}
