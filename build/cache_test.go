package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/recipe"
)

// cacheRun builds the recipe in ctxDir on root with the fake runner and
// returns, per run or copy step in order, whether it was cached.
func cacheRun(t *testing.T, root, ctxDir string, args map[string]string, o Options) ([]bool, []Event) {
	t.Helper()
	r, err := recipe.Load(filepath.Join(ctxDir, "strata.yaml"), recipe.WithBuildArgs(args))
	if err != nil {
		t.Fatalf("recipe: %v", err)
	}
	epoch := time.Unix(1700000000, 0)
	o.Root, o.Compression, o.Epoch = root, commit.Gzip, &epoch
	var events []Event
	if _, err := Build(context.Background(), o, r, Deps{
		Runner: &fakeRunner{}, Mounter: &fakeMounter{}, Progress: func(e Event) { events = append(events, e) },
	}); err != nil {
		t.Fatal(err)
	}
	var cached []bool
	for _, e := range events {
		if e.Kind == EventDone && (e.Action == "run" || e.Action == "copy") {
			cached = append(cached, e.Cached)
		}
	}
	return cached, events
}

const cacheRecipe = `args: {GREETING: hello}
from: scratch
steps:
  - copy: src/
    to: /src/
    owner: OWNER
  - run: write /one.txt one
  - run: write /greeting.txt ${GREETING}
  - run: write /three.txt three
`

func cacheContext(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"strata.yaml": cacheRecipe, "src/a.go": "package a", "src/b.go": "package b"})
	return dir
}

func TestCacheHitsAndMisses(t *testing.T) {
	root, ctx := t.TempDir(), cacheContext(t)
	first, _ := cacheRun(t, root, ctx, nil, Options{})
	if d := cmp.Diff([]bool{false, false, false, false}, first); d != "" {
		t.Fatalf("first build (-want +got):\n%s", d)
	}
	again, _ := cacheRun(t, root, ctx, nil, Options{})
	if d := cmp.Diff([]bool{true, true, true, true}, again); d != "" {
		t.Errorf("same build again (-want +got):\n%s", d)
	}

	// Only an mtime, or the mode a checkout under another umask gives:
	// everything hits.
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(filepath.Join(ctx, "src/a.go"), old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(ctx, "src/b.go"), 0o664); err != nil {
		t.Fatal(err)
	}
	touched, _ := cacheRun(t, root, ctx, nil, Options{})
	if d := cmp.Diff([]bool{true, true, true, true}, touched); d != "" {
		t.Errorf("after touch and chmod (-want +got):\n%s", d)
	}

	// An arg used by step 3: steps 1 and 2 hit.
	arg, events := cacheRun(t, root, ctx, map[string]string{"GREETING": "bonjour"}, Options{})
	if d := cmp.Diff([]bool{true, true, false, false}, arg); d != "" {
		t.Errorf("after changing an arg of step 3 (-want +got):\n%s", d)
	}
	if !hasInfo(events, `arg GREETING: "hello" → "bonjour"`) {
		t.Errorf("the miss does not name the arg:\n%v", infos(events))
	}

	// An edited input file: the copy and everything after it run.
	writeTree(t, ctx, map[string]string{"src/a.go": "package a // edited"})
	edited, events := cacheRun(t, root, ctx, nil, Options{})
	if d := cmp.Diff([]bool{false, false, false, false}, edited); d != "" {
		t.Errorf("after editing a copied file (-want +got):\n%s", d)
	}
	if !hasInfo(events, "files changed: src/a.go") {
		t.Errorf("the miss does not name the file:\n%v", infos(events))
	}

	// --no-cache runs everything.
	all, _ := cacheRun(t, root, ctx, nil, Options{NoCache: true})
	if d := cmp.Diff([]bool{false, false, false, false}, all); d != "" {
		t.Errorf("--no-cache (-want +got):\n%s", d)
	}
}

// TestEarlyCutoff: a step that re-runs but makes a byte-identical layer
// leaves the later steps cached, since keys chain on results.
func TestEarlyCutoff(t *testing.T) {
	root, ctx := t.TempDir(), cacheContext(t)
	cacheRun(t, root, ctx, nil, Options{})
	writeTree(t, ctx, map[string]string{"strata.yaml": `args: {GREETING: hello}
from: scratch
steps:
  - copy: src/
    to: /src/
    owner: OWNER
  - run: write /one.txt one ;; the same file, written by a changed step
  - run: write /greeting.txt ${GREETING}
  - run: write /three.txt three
`})
	got, _ := cacheRun(t, root, ctx, nil, Options{})
	if d := cmp.Diff([]bool{true, false, true, true}, got); d != "" {
		t.Errorf("after a change that yields the same layer (-want +got):\n%s", d)
	}
}

func hasInfo(events []Event, text string) bool {
	for _, e := range events {
		if e.Kind == EventInfo && strings.Contains(e.Text, text) {
			return true
		}
	}
	return false
}

func infos(events []Event) []string {
	var out []string
	for _, e := range events {
		if e.Kind == EventInfo {
			out = append(out, e.Text)
		}
	}
	return out
}

// TestCopyKeyWithoutEnv: a copy's and a file step's results do not depend
// on the env, user or shell in effect, so changing them re-runs the run
// steps only (a scratch stage of copies stays cached when the top-level
// env changes); the working dir counts only through the destination.
func TestCopyKeyWithoutEnv(t *testing.T) {
	root, dir := t.TempDir(), t.TempDir()
	write := func(env, workdir string) {
		writeTree(t, dir, map[string]string{"a.txt": "a", "strata.yaml": `from: scratch
env: {A: "` + env + `"}
shell: [/bin/` + env + `, -c]
workdir: ` + workdir + `
steps:
  - copy: a.txt
    to: /abs/a.txt
    owner: OWNER
  - file: /abs/f
    owner: OWNER
    content: f
  - copy: a.txt
    to: rel.txt
    owner: OWNER
  - run: write /r ${A}
`})
	}
	write("1", "/w")
	if got, _ := cacheRun(t, root, dir, nil, Options{}); !cmp.Equal(got, []bool{false, false, false}) {
		t.Fatalf("first build cached %v", got)
	}
	write("2", "/w")
	if got, _ := cacheRun(t, root, dir, nil, Options{}); !cmp.Equal(got, []bool{true, true, false}) {
		t.Errorf("after an env and shell change, cached %v; want the copies, not the run", got)
	}
	write("2", "/v")
	if got, _ := cacheRun(t, root, dir, nil, Options{}); !cmp.Equal(got, []bool{true, false, false}) {
		t.Errorf("after a workdir change, cached %v; want the absolute copy only", got)
	}
}
