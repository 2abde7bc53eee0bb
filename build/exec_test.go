package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/stratabuild/strata/recipe"
)

// TestStageDAGOrderAndConcurrency: stages that do not depend on each other
// run at the same time; a stage that copies from both starts after both.
func TestStageDAGOrderAndConcurrency(t *testing.T) {
	_, runner, _, _, err := buildFake(t, `stages:
  - name: a
    from: scratch
    steps:
      - run: sleep 400
      - run: write /a.txt from a
  - name: b
    from: scratch
    steps:
      - run: sleep 400
      - run: write /b.txt from b
  - name: app
    from: scratch
    steps:
      - copy: /a.txt
        from: a
        to: /a.txt
      - copy: /b.txt
        from: b
        to: /b.txt
      - run: write /done ok
`)
	if err != nil {
		t.Fatal(err)
	}
	spans := map[string]span{}
	for _, s := range runner.spans {
		spans[s.cmd] = s
	}
	a, b := spans["write /a.txt from a"], spans["write /b.txt from b"]
	var sleeps []span
	for _, s := range runner.spans {
		if s.cmd == "sleep 400" {
			sleeps = append(sleeps, s)
		}
	}
	if len(sleeps) != 2 {
		t.Fatalf("%d sleeps ran, want 2", len(sleeps))
	}
	sa, sb := sleeps[0], sleeps[1]
	if !sa.start.Before(sb.end) || !sb.start.Before(sa.end) {
		t.Errorf("the sleeps of stages a and b did not overlap: %v–%v and %v–%v", sa.start, sa.end, sb.start, sb.end)
	}
	done := spans["write /done ok"]
	if done.start.Before(a.end) || done.start.Before(b.end) {
		t.Errorf("stage app ran before the stages it copies from had finished")
	}
}

// TestFirstFailureCancelsOtherStages: one stage fails; the stage running
// beside it is cancelled at once, and the build reports the failure, not
// the cancellation.
func TestFirstFailureCancelsOtherStages(t *testing.T) {
	start := time.Now()
	_, runner, _, _, err := buildFake(t, `stages:
  - name: slow
    from: scratch
    steps:
      - run: block
  - name: broken
    from: scratch
    steps:
      - run: sleep 100
      - run: fail 4 no space left
  - name: app
    from: slow
    steps:
      - copy: /x
        from: broken
        to: /x
`)
	var se *StepError
	if !errors.As(err, &se) || se.Status != 4 {
		t.Fatalf("err = %v, want the failing step's *StepError", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the build took %s: the blocked stage was not cancelled", d)
	}
	var blocked *span
	for i, s := range runner.spans {
		if s.cmd == "block" {
			blocked = &runner.spans[i]
		}
	}
	if blocked == nil || !errors.Is(blocked.err, context.Canceled) {
		t.Errorf("the other stage's step was not cancelled: %+v", blocked)
	}
}

// TestDryRunPlansHitsAndMisses: a dry run runs nothing; after a build it
// plans every step as cached; after a change, the changed step runs, says
// why, and the steps after it run because it does.
func TestDryRunPlansHitsAndMisses(t *testing.T) {
	ctxDir, root := t.TempDir(), t.TempDir()
	yaml := func(second string) string {
		return "from: scratch\nsteps:\n  - run: write /1 one\n  - run: " + second + "\n  - env: {A: b}\n  - run: write /3 three\n"
	}
	load := func(y string) *recipe.Recipe {
		writeTree(t, ctxDir, map[string]string{"strata.yaml": y})
		r, err := recipe.Load(filepath.Join(ctxDir, "strata.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	dry := func(o *Options) { o.DryRun = true }
	wills := func(res *Result) []string {
		var out []string
		for _, p := range res.Plan {
			out = append(out, p.Will+" "+p.Why)
		}
		return out
	}
	r := load(yaml("write /2 two"))
	res, runner, _, _, err := buildIn(t, root, r, dry)
	if err != nil {
		t.Fatal(err)
	}
	if len(runner.runs) != 0 {
		t.Errorf("a dry run ran %d steps", len(runner.runs))
	}
	want := []string{"run no earlier build of this step", "run an earlier step runs", "run an earlier step runs"}
	if d := cmp.Diff(want, wills(res)); d != "" {
		t.Errorf("dry run on an empty root (-want +got):\n%s", d)
	}
	if _, _, _, _, err := buildIn(t, root, r); err != nil {
		t.Fatal(err)
	}
	if res, _, _, _, err = buildIn(t, root, r, dry); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"cached ", "cached ", "cached "}, wills(res)); d != "" {
		t.Errorf("dry run after a build (-want +got):\n%s", d)
	}
	if res, _, _, _, err = buildIn(t, root, load(yaml("write /2 TWO")), dry); err != nil {
		t.Fatal(err)
	}
	got := wills(res)
	if len(got) != 3 || got[0] != "cached " || !strings.HasPrefix(got[1], `run step text changed: "write /2 two" → "write /2 TWO"`) || got[2] != "run an earlier step runs" {
		t.Errorf("dry run after changing step 2: %q", got)
	}
}

// TestRelativeCopyUsesBaseWorkdir: a relative copy destination and a run
// step both resolve against the base image's WorkingDir, as in docker.
func TestRelativeCopyUsesBaseWorkdir(t *testing.T) {
	base := configLayout(t, func(c *v1.ConfigFile) { c.Config.WorkingDir = "/srv" })
	ctxDir := t.TempDir()
	writeTree(t, ctxDir, map[string]string{
		"a.txt":       "a",
		"strata.yaml": "from: oci-layout://" + base + "\nsteps:\n  - copy: a.txt\n    to: app/\n    owner: OWNER\n  - run: noop\n  - workdir: sub\n  - copy: a.txt\n    to: b.txt\n    owner: OWNER\n",
	})
	r, err := recipe.Load(filepath.Join(ctxDir, "strata.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res, runner, _, _, err := buildIn(t, t.TempDir(), r)
	if err != nil {
		t.Fatal(err)
	}
	if len(runner.runs) != 1 || runner.runs[0].Cwd != "/srv" {
		t.Errorf("the run step's working dir: %+v, want /srv", runner.runs)
	}
	var paths []string
	ls, err := res.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		paths = append(paths, tarPaths(t, l)...)
	}
	want := []string{"srv/", "srv/app/", "srv/app/a.txt", "srv/", "srv/sub/", "srv/sub/b.txt"}
	if d := cmp.Diff(want, paths); d != "" {
		t.Errorf("layer entries (-want +got):\n%s", d)
	}
	cfg, _ := res.Image.ConfigFile()
	if cfg.Config.WorkingDir != "/srv/sub" {
		t.Errorf("WorkingDir = %q, want /srv/sub", cfg.Config.WorkingDir)
	}
}

// TestFileStep: a file step writes its exact bytes with its mode, makes a
// layer, and is cached by content.
func TestFileStep(t *testing.T) {
	ctxDir, root := t.TempDir(), t.TempDir()
	load := func(content string) *recipe.Recipe {
		writeTree(t, ctxDir, map[string]string{"strata.yaml": "args: {X: \"1\"}\nfrom: scratch\nworkdir: /etc\nsteps:\n  - file: app.conf\n    owner: OWNER\n    mode: \"0600\"\n    content: |\n      " + content + "\n"})
		r, err := recipe.Load(filepath.Join(ctxDir, "strata.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	res, _, _, _, err := buildIn(t, root, load("x=${X}"))
	if err != nil {
		t.Fatal(err)
	}
	ls, err := res.Image.Layers()
	if err != nil || len(ls) != 1 {
		t.Fatalf("%d layers (%v), want 1", len(ls), err)
	}
	entries := tarEntries(t, ls[0])
	got := entries["etc/app.conf"]
	if got.body != "x=1\n" || got.mode != 0o600 {
		t.Errorf("etc/app.conf: %q mode %#o, want \"x=1\\n\" mode 0600", got.body, got.mode)
	}
	cached := func(r *recipe.Recipe) bool {
		_, _, _, events, err := buildIn(t, root, r)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if e.Kind == EventDone && e.Action == "file" {
				return e.Cached
			}
		}
		t.Fatal("no file step ran")
		return false
	}
	if !cached(load("x=${X}")) {
		t.Error("the same file step again was not cached")
	}
	if cached(load("x=2")) {
		t.Error("a file step with other content was cached")
	}
}

// TestPlatformsShareStages: two target platforms make one index; a stage
// on ${BUILDPLATFORM} that does not depend on the target is built once.
func TestPlatformsShareStages(t *testing.T) {
	res, runner, _, _, err := buildFake(t, `platforms: [linux/amd64, linux/arm64]
stages:
  - name: tools
    platform: ${BUILDPLATFORM}
    from: scratch
    steps:
      - run: write /tool built-once
  - name: app
    from: scratch
    steps:
      - copy: /tool
        from: tools
        to: /tool
        owner: OWNER
      - file: /target
        owner: OWNER
        content: ${TARGETARCH}
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(runner.runs) != 1 {
		t.Errorf("the shared stage ran %d times, want once", len(runner.runs))
	}
	if len(res.Images) != 2 {
		t.Fatalf("%d images, want one per platform", len(res.Images))
	}
	for i, arch := range []string{"amd64", "arm64"} {
		cf, err := res.Images[i].ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		ls, _ := res.Images[i].Layers()
		files := tarEntries(t, ls[len(ls)-1])
		if cf.Architecture != arch || files["target"].body != arch {
			t.Errorf("image %d: architecture %s, /target %q; want %s", i, cf.Architecture, files["target"].body, arch)
		}
	}
}

// TestDryRunPerPlatform: a dry run plans each platform, its rows named
// after it, in the order of the platforms given, then of the steps,
// however the platforms' stages ran at once.
func TestDryRunPerPlatform(t *testing.T) {
	for range 5 {
		res, runner, _, _, err := buildFake(t, "platforms: [linux/arm64, linux/amd64]\nfrom: scratch\nsteps:\n  - file: /target\n    owner: OWNER\n    content: ${TARGETARCH}\n  - file: /second\n    content: x\n",
			func(o *Options) { o.DryRun = true })
		if err != nil {
			t.Fatal(err)
		}
		var rows []string
		for _, p := range res.Plan {
			rows = append(rows, p.Stage+" "+p.Pos[strings.LastIndexByte(p.Pos, ':'):]+" "+p.Will)
		}
		want := []string{"linux/arm64 :4 run", "linux/arm64 :7 run", "linux/amd64 :4 run", "linux/amd64 :7 run"}
		if d := cmp.Diff(want, rows); d != "" || len(runner.runs) != 0 {
			t.Fatalf("dry-run rows (-want +got):\n%s", d)
		}
		if len(res.Stages) != 2 || res.Stages[0].Platform != "linux/arm64" {
			t.Errorf("planned stages: %+v", res.Stages)
		}
	}
}

// TestFailedPlatformNamed: when one platform's step fails, the error
// names that platform, and the other platform's step, stopped by it, is
// reported canceled, not failed.
func TestFailedPlatformNamed(t *testing.T) {
	_, _, _, events, err := buildFake(t, "platforms: [linux/amd64, linux/386]\nfrom: scratch\nsteps:\n  - run: fail-on 386 ${TARGETARCH}\n")
	if err == nil || !strings.HasPrefix(err.Error(), "linux/386: ") {
		t.Fatalf("error %v, want one starting with linux/386", err)
	}
	kinds := map[string]EventKind{}
	for _, e := range events {
		if e.Kind == EventFailed || e.Kind == EventCanceled {
			kinds[e.Stage] = e.Kind
		}
	}
	if kinds["linux/386"] != EventFailed || kinds["linux/amd64"] != EventCanceled {
		t.Errorf("step ends %v, want linux/386 failed and linux/amd64 canceled", kinds)
	}
}

// TestStageRunsBeforeItsCopySourceIsBuilt: a stage's steps before a copy
// from another stage run while that stage is built; only the copy waits.
func TestStageRunsBeforeItsCopySourceIsBuilt(t *testing.T) {
	_, runner, _, _, err := buildFake(t, `stages:
  - name: build
    from: scratch
    steps:
      - run: sleep 300
      - run: write /out/app built
  - name: app
    from: scratch
    steps:
      - run: sleep 301
      - copy: /out/app
        from: build
        to: /app
`)
	if err != nil {
		t.Fatal(err)
	}
	var build, app span
	for _, s := range runner.spans {
		switch s.cmd {
		case "sleep 300":
			build = s
		case "sleep 301":
			app = s
		}
	}
	if !app.start.Before(build.end) {
		t.Errorf("app's first step started at %v, after build's step ended at %v: it waited for the stage it copies from", app.start, build.end)
	}
}

// TestCopySourceFailing: a stage waiting to copy from a stage that fails
// stops, canceled; the build's error is the failing stage's own.
func TestCopySourceFailing(t *testing.T) {
	_, _, _, events, err := buildFake(t, `stages:
  - name: build
    from: scratch
    steps:
      - run: sleep 100
      - run: fail 4 boom
  - name: app
    from: scratch
    steps:
      - run: noop
      - copy: /out/app
        from: build
        to: /app
`)
	var se *StepError
	if !errors.As(err, &se) || se.Status != 4 || strings.Contains(err.Error(), "copy from") {
		t.Fatalf("error %v, want build's step failing with status 4", err)
	}
	for _, e := range events {
		if e.Stage == "app" && e.Kind == EventFailed {
			t.Errorf("app's step %d reported failed: %s", e.Step, e.Error)
		}
	}
}

// TestCopyWaitSaidNotRun: a copy from a stage still being built says it
// waits, and its run time leaves the wait out.
func TestCopyWaitSaidNotRun(t *testing.T) {
	_, _, _, events, err := buildFake(t, `stages:
  - name: build
    from: scratch
    steps:
      - run: sleep 400
      - run: write /out/app built
  - name: app
    from: scratch
    steps:
      - copy: /out/app
        from: build
        to: /app
`)
	if err != nil {
		t.Fatal(err)
	}
	said := false
	for _, e := range events {
		if e.Stage == "app" && e.Kind == EventInfo && e.Text == "waiting for stage build" {
			said = true
		}
		if e.Stage == "app" && e.Kind == EventDone && e.Timings != nil && e.Timings.Process > 200*time.Millisecond {
			t.Errorf("the copy's run time %v holds the wait for its source", e.Timings.Process)
		}
	}
	if !said {
		t.Error("the copy did not say it waits for stage build")
	}
}

// TestCopyWaitSaidOnLookup: on a root that can hit, a copy's cache lookup
// waits for the stage it copies from (its key holds the stage's diffIDs);
// that wait is said too.
func TestCopyWaitSaidOnLookup(t *testing.T) {
	root, dir := t.TempDir(), t.TempDir()
	load := func(sleep string) *recipe.Recipe {
		p := filepath.Join(dir, "strata.yaml")
		if err := os.WriteFile(p, []byte(`stages:
  - name: build
    from: scratch
    steps:
      - run: sleep `+sleep+`
      - run: write /out/app built
  - name: app
    from: scratch
    steps:
      - copy: /out/app
        from: build
        to: /app
`), 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := recipe.Load(p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if _, _, _, _, err := buildIn(t, root, load("1")); err != nil {
		t.Fatal(err)
	}
	_, _, _, events, err := buildIn(t, root, load("400"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Stage == "app" && e.Kind == EventInfo && e.Text == "waiting for stage build" {
			return
		}
	}
	t.Error("the copy's cache lookup did not say it waits for stage build")
}

// TestRunUsesBaseShell: a string-form run step runs in the base image's
// Shell (docker's SHELL) unless the recipe names one; a stage continuing
// that stage keeps it.
func TestRunUsesBaseShell(t *testing.T) {
	base := configLayout(t, func(c *v1.ConfigFile) { c.Config.Shell = []string{"/bin/sh", "-ec"} })
	for _, tc := range []struct {
		name, yaml string
		want       [][]string
	}{
		{"base's", "from: oci-layout://" + base + "\nsteps:\n  - run: noop\n",
			[][]string{{"/bin/sh", "-ec", "noop"}}},
		{"recipe's", "from: oci-layout://" + base + "\nshell: [/bin/bash, -c]\nsteps:\n  - run: noop\n",
			[][]string{{"/bin/bash", "-c", "noop"}}},
		{"continued stage", "stages:\n  - name: a\n    from: oci-layout://" + base + "\n    steps:\n      - run: noop\n  - name: b\n    from: a\n    steps:\n      - run: noop ;; b\n",
			[][]string{{"/bin/sh", "-ec", "noop"}, {"/bin/sh", "-ec", "noop ;; b"}}},
		{"none", "from: scratch\nsteps:\n  - run: noop\n",
			[][]string{{"/bin/sh", "-c", "noop"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, runner, _, _, err := buildFake(t, tc.yaml)
			if err != nil {
				t.Fatal(err)
			}
			var got [][]string
			for _, r := range runner.runs {
				got = append(got, r.Args)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("argv (-want +got):\n%s", d)
			}
		})
	}
}

// TestOnBuildWarned: a base image's ONBUILD triggers, which strata does
// not run, are warned of, once.
func TestOnBuildWarned(t *testing.T) {
	base := configLayout(t, func(c *v1.ConfigFile) { c.Config.OnBuild = []string{"RUN echo triggered > /onbuild.txt"} })
	_, _, _, events, err := buildFake(t, "stages:\n  - name: a\n    from: oci-layout://"+base+"\n    steps:\n      - run: noop\n  - name: b\n    from: oci-layout://"+base+"\n    steps:\n      - run: noop ;; b\n")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range events {
		if e.Kind == EventInfo && strings.Contains(e.Text, `has ONBUILD triggers, which strata does not run (docker runs them first): ["RUN echo triggered > /onbuild.txt"]`) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the ONBUILD warning was given %d times, want once", n)
	}
}

// configLayout writes an OCI layout holding an empty image whose config
// set changes, and returns its dir.
func configLayout(t *testing.T, set func(*v1.ConfigFile)) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "base")
	cf, err := empty.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	set(cf)
	img, err := mutate.ConfigFile(empty.Image, cf)
	if err != nil {
		t.Fatal(err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSurplusHistoryWarned: a base whose history has more entries with a
// layer than layers is warned of, as BuildKit warns ("invalid image config
// with unaccounted layers"), also through a stage continuing its stage;
// the image has one such entry per layer.
func TestSurplusHistoryWarned(t *testing.T) {
	dir := configLayout(t, func(c *v1.ConfigFile) { c.History = []v1.History{{CreatedBy: "x 1"}, {CreatedBy: "x 2"}} })
	res, _, _, events, err := buildFake(t, "stages:\n  - name: a\n    from: oci-layout://"+dir+"\n    steps:\n      - run: write /a.txt alpha\n  - name: b\n    from: a\n    steps:\n      - env: {B: \"2\"}\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "strata.yaml:3:11: the base image oci-layout://" + dir + " has history entries for 2 layers but 0 layers (invalid image config with unaccounted layers): the image marks the last 2 of those entries empty_layer, as BuildKit does"
	n := 0
	for _, e := range events {
		if e.Kind == EventInfo && strings.HasPrefix(e.Text, "warning: ") && strings.HasSuffix(e.Text, want) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the warning %q was given %d times, want once; events: %+v", want, n, events)
	}
	got, err := res.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := res.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	nonEmpty := 0
	for _, h := range got.History {
		if !h.EmptyLayer {
			nonEmpty++
		}
	}
	if nonEmpty != len(layers) || len(layers) != 1 {
		t.Errorf("%d history entries with a layer for %d layers, want 1 for 1: %+v", nonEmpty, len(layers), got.History)
	}
}
