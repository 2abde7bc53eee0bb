package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// reproRecipe has run steps that create, modify and delete files, a copy
// from the context, a metadata step and a copy from another stage; the
// last step writes down the mtimes it sees of files earlier steps made,
// and of a dir one of them only touched (a file made and removed in it).
const reproRecipe = `args: {BASE: scratch}
stages:
  - name: tools
    from: ${BASE}
    steps:
      - run: mkdir -p /out && echo tool > /out/tool && date > /out/built-at-ignored && rm /out/built-at-ignored
  - name: app
    from: ${BASE}
    steps:
      - copy: [src/, app.conf]
        to: /opt/app/
      - run: echo created > /opt/app/new.txt && echo more >> /etc/passwd && rm -f /bin/vi && touch /opt/app/lib/scratch && rm /opt/app/lib/scratch
      - env: {MODE: prod}
      - workdir: /opt/app
      - copy: /out/tool
        from: tools
        to: bin/
      - run: touch -d @1 ancient.txt && mkdir -p logs && stat -c '%Y %n' new.txt bin/tool lib > logs/seen
image:
  cmd: [cat, /opt/app/new.txt]
`

// checkout writes the recipe's build context at dir, as a fresh checkout
// would: files get the time of the checkout.
func checkout(t *testing.T, dir string) string {
	t.Helper()
	files := map[string]string{"strata.yaml": reproRecipe, "app.conf": "port=8080\n", "src/main.sh": "#!/bin/sh\necho app\n", "src/lib/util.sh": "util\n"}
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

var noEpoch = []string{"SOURCE_DATE_EPOCH="}

// TestReproducibleByDefault: with no environment set, two builds in two
// state roots, from two checkouts at different absolute paths, at least a
// second apart, give one digest; a fully cached rebuild gives it again.
// The first root is fresh: no lookup can hit, and the steps' diffIDs are
// learned as their layers are compressed; the second root's cache holds
// another recipe's step, so each step's diffID is hashed as it exits.
func TestReproducibleByDefault(t *testing.T) {
	requireBuildTools(t)
	base := busyboxBase(t)
	a := checkout(t, filepath.Join(t.TempDir(), "builds", "job-41", "app"))
	rootA := t.TempDir()
	first := mustBuild(t, noEpoch, "--root", rootA, "--build-arg", base, a)
	time.Sleep(1100 * time.Millisecond)
	b := checkout(t, filepath.Join(t.TempDir(), "ci", "other", "checkout"))
	rootB := t.TempDir()
	mustBuild(t, noEpoch, "--root", rootB, "--build-arg", base,
		writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: echo other > /other\n", map[string]string{}))
	second := mustBuild(t, noEpoch, "--root", rootB, "--build-arg", base, b)
	if first != second {
		t.Errorf("two checkouts built a second apart gave %s and %s", first, second)
	}
	r := strata(t, noEpoch, "build", "--root", rootA, "--build-arg", base, a)
	if strings.TrimSpace(r.stdout) != first || strings.Count(r.stderr, ": cached") != 5 {
		t.Errorf("fully cached rebuild: %s (want %s), stderr:\n%s", r.stdout, first, r.stderr)
	}
	cfg := builtConfig(t, noEpoch, "--root", rootA, "--build-arg", base, a)
	for _, h := range cfg.History {
		if strings.Contains(h.CreatedBy, a) || strings.Contains(h.CreatedBy, "/builds/") {
			t.Errorf("history names a host path: %q", h.CreatedBy)
		}
	}
	if created := cfg.Created; created.After(time.Now().Add(-time.Hour)) {
		t.Errorf("config created = %v: the wall clock, not the build epoch", created)
	}
}

// TestEarlyCutoffByDefault: a step that changes but makes the same files
// leaves the steps after it cached, with no SOURCE_DATE_EPOCH.
func TestEarlyCutoffByDefault(t *testing.T) {
	requireBuildTools(t)
	base := busyboxBase(t)
	root := t.TempDir()
	recipe := func(first string) string {
		return "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: " + first + "\n  - run: echo after > /after.txt\n"
	}
	ctx := writeRecipe(t, recipe("echo same > /same.txt"), map[string]string{})
	mustBuild(t, noEpoch, "--root", root, "--build-arg", base, ctx)
	time.Sleep(1100 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(ctx, "strata.yaml"), []byte(recipe("echo same > /same.txt; true")), 0o644); err != nil {
		t.Fatal(err)
	}
	r := strata(t, noEpoch, "build", "--root", root, "--build-arg", base, ctx)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "strata.yaml:4 run: done") || !strings.Contains(r.stderr, "strata.yaml:5 run: cached") {
		t.Errorf("the step after a changed step that made the same layer was not cached:\n%s", r.stderr)
	}
}

// TestTimestampFlagAndSourceDateEpoch: --timestamp now gives wall-clock
// times; SOURCE_DATE_EPOCH wins over the default; --timestamp over both.
func TestTimestampFlagAndSourceDateEpoch(t *testing.T) {
	requireBuildTools(t)
	base := busyboxBase(t)
	ctx := writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: echo x > /x\n", map[string]string{})
	now := builtConfig(t, noEpoch, "--timestamp", "now", "--root", t.TempDir(), "--build-arg", base, ctx)
	if d := time.Since(now.Created); d < 0 || d > 10*time.Minute {
		t.Errorf("--timestamp now: created %v, want about now", now.Created)
	}
	sde := builtConfig(t, []string{"SOURCE_DATE_EPOCH=1600000000"}, "--root", t.TempDir(), "--build-arg", base, ctx)
	if !sde.Created.Equal(time.Unix(1600000000, 0)) {
		t.Errorf("SOURCE_DATE_EPOCH=1600000000: created %v", sde.Created)
	}
	flag := builtConfig(t, []string{"SOURCE_DATE_EPOCH=1600000000"}, "--timestamp", "1500000000", "--root", t.TempDir(), "--build-arg", base, ctx)
	if !flag.Created.Equal(time.Unix(1500000000, 0)) {
		t.Errorf("--timestamp 1500000000 with SOURCE_DATE_EPOCH set: created %v", flag.Created)
	}
}

type imageConfigFile struct {
	Created time.Time `json:"created"`
	History []struct {
		Created   time.Time `json:"created"`
		CreatedBy string    `json:"created_by"`
	} `json:"history"`
}

// builtConfig builds into an OCI layout and returns the image's config.
func builtConfig(t *testing.T, env []string, args ...string) imageConfigFile {
	t.Helper()
	out := filepath.Join(t.TempDir(), "img.oci")
	mustBuild(t, env, append([]string{"-t", "r:1", "-o", "type=oci,dest=" + out}, args...)...)
	img := layoutImage(t, out, "r:1")
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var cf imageConfigFile
	if err := json.Unmarshal(raw, &cf); err != nil {
		t.Fatal(err)
	}
	return cf
}

// TestLearnedLayerOverSlowLayer: on a fresh root (diffIDs learned as the
// layers are compressed) a step deletes and adds files over a layer still
// being compressed after the last step (a big copy): its layer keeps the
// whiteout, the image is the one a root whose cache could hit makes
// (diffIDs hashed as the steps exit), the deleted file is gone from the
// image, and a cached rebuild gives it again, and so does a --no-cache
// one (whose layers are the store's snapshots again: those are removed
// as duplicates while the later layers are compressed over them). On a
// root where the big layer's snapshot cannot be stored (its lock is a
// dir), the build still makes that image: the trimmed dir stays where
// the last layer is diffed over it, and is removed at the end.
func TestLearnedLayerOverSlowLayer(t *testing.T) {
	requireBuildTools(t)
	base := busyboxBase(t)
	yaml := `args: {BASE: scratch}
from: ${BASE}
steps:
  - run: mkdir /d && echo a > /d/a && echo b > /d/b
  - copy: big
    to: /big
  - run: rm /d/a && echo c > /d/c
`
	// 100 MB that gzip compresses, slowly: the copy's layer is still
	// being compressed when the last step is done.
	big := make([]byte, 100<<20)
	for i := range big {
		big[i] = byte((i*2654435761)>>13 ^ i>>7)
	}
	ctx := writeRecipe(t, yaml, map[string]string{"big": string(big)})
	build := func(root string, flags ...string) (string, string) {
		out := filepath.Join(t.TempDir(), "img.oci")
		args := append([]string{"--root", root, "--build-arg", base, "-t", "x:1", "-o", "type=oci,dest=" + out}, flags...)
		return mustBuild(t, noEpoch, append(args, ctx)...), out
	}
	fresh := t.TempDir()
	learned, out := build(fresh)
	seeded := t.TempDir()
	mustBuild(t, noEpoch, "--root", seeded, "--build-arg", base,
		writeRecipe(t, "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: echo other > /other\n", map[string]string{}))
	hashed, hashedOut := build(seeded)
	if learned != hashed {
		t.Errorf("fresh root: %s, diffIDs %v\nseeded root: %s, diffIDs %v", learned, diffIDsOf(t, out, "x:1"), hashed, diffIDsOf(t, hashedOut, "x:1"))
	}
	bundle := filepath.Join(t.TempDir(), "bundle")
	run(t, nil, "umoci", "unpack", "--image", out+":x:1", bundle)
	if got := listDir(t, filepath.Join(bundle, "rootfs", "d")); strings.Join(got, " ") != "b c" {
		t.Errorf("/d holds %v, want [b c]", got)
	}
	assertNoLeftovers(t, fresh)
	if again, _ := build(fresh); again != learned {
		t.Errorf("cached rebuild on the fresh root: %s, want %s", again, learned)
	}
	if again, _ := build(fresh, "--no-cache"); again != learned {
		t.Errorf("--no-cache rebuild on the fresh root: %s, want %s", again, learned)
	}
	assertNoLeftovers(t, fresh)

	ids := diffIDsOf(t, out, "x:1")
	blocked := t.TempDir()
	lock := filepath.Join(blocked, "layers", "locks", "sha256-"+strings.TrimPrefix(ids[len(ids)-2], "sha256:")+".lock")
	if err := os.MkdirAll(lock, 0o700); err != nil {
		t.Fatal(err)
	}
	if again, _ := build(blocked); again != learned {
		t.Errorf("a root that cannot store the big layer's snapshot: %s, want %s", again, learned)
	}
	if tmp, _ := os.ReadDir(filepath.Join(blocked, "layers", "tmp")); len(tmp) > 0 {
		t.Errorf("upper dirs left in the store: %v", tmp)
	}
}

// TestUmaskDoesNotReachImage: strata's own umask changes no file of an
// image. Directories that copy, file and workdir steps make, the parents
// of a mount's target that a step writes beside, and the root a step sees,
// are 0755 under umask 077 as under 022: one digest, and a step run as
// nobody can still read them, and its /etc/hosts, /etc/resolv.conf and
// cache mount.
func TestUmaskDoesNotReachImage(t *testing.T) {
	requireBuildTools(t)
	base := busyboxBase(t)
	ctx := writeRecipe(t, `args: {BASE: scratch}
from: ${BASE}
steps:
  - copy: a.txt
    to: /srv/app/a.txt
  - file: /opt/conf/c
    content: "x\n"
  - workdir: /w/x
  - copy: a.txt
    to: b/a.txt
  - run: stat -c '%a %n' / /srv /srv/app /opt/conf /w/x /w/x/b > /seen && echo x > /m/n/beside
    mounts:
      - {type: cache, target: /m/n/cache}
  - user: nobody
  - run: ls / /srv/app /opt/conf /w/x/b /m/n /cache && cat /etc/hosts /etc/resolv.conf > /dev/null
    mounts:
      - {type: cache, target: /cache}
`, map[string]string{"a.txt": "a\n"})
	build := func(umask string) string {
		t.Helper()
		cmd := exec.Command("sh", "-c", "umask "+umask+` && exec "$0" "$@"`, strataBin,
			"build", "--root", t.TempDir(), "--build-arg", base, ctx)
		cmd.Env = os.Environ()
		r, err := runCmd(cmd)
		if err != nil || r.code != 0 {
			t.Fatalf("build under umask %s: %v, exit %d\n%s", umask, err, r.code, r.stderr)
		}
		return strings.TrimSpace(r.stdout)
	}
	if usual, strict := build("022"), build("077"); usual != strict {
		t.Errorf("umask 022 built %s, umask 077 %s", usual, strict)
	}
}

// TestCommentKeepsDigest: a comment added at the top of the recipe, which
// moves every step's line, changes no layer and no digest: a fully cached
// rebuild gives the first build's image.
func TestCommentKeepsDigest(t *testing.T) {
	requireBuildTools(t)
	base := busyboxBase(t)
	recipe := "args: {BASE: scratch}\nfrom: ${BASE}\nsteps:\n  - run: echo x > /x\n  - env: {A: \"1\"}\n"
	ctx := writeRecipe(t, recipe, map[string]string{})
	root := t.TempDir()
	first := mustBuild(t, nil, "--root", root, "--build-arg", base, ctx)
	if err := os.WriteFile(filepath.Join(ctx, "strata.yaml"), []byte("# a comment\n"+recipe), 0o644); err != nil {
		t.Fatal(err)
	}
	if again := mustBuild(t, nil, "--root", root, "--build-arg", base, ctx); again != first {
		t.Errorf("a comment changed the digest: %s, then %s", first, again)
	}
}
