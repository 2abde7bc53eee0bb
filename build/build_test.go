package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stratabuild/strata/build/chain"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/recipe"
)

func TestStepLoopHistoryAndConfig(t *testing.T) {
	res, runner, _, _, err := buildFake(t, `from: scratch
env: {A: "1"}
steps:
  - run: write /a.txt alpha
  - env: {B: "2"}
  - workdir: /srv
  - run: noop
    name: changes nothing
  - user: "1000:1000"
  - run: write /b.txt beta
image:
  entrypoint: [/bin/app]
  labels: {l: v}
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(runner.runs) != 3 {
		t.Fatalf("%d runs, want 3", len(runner.runs))
	}
	last := runner.runs[2]
	if d := cmp.Diff([]string{"A=1", "B=2"}, last.Env); d != "" {
		t.Errorf("env of the last run (-want +got):\n%s", d)
	}
	if last.Cwd != "/srv" || last.User != "1000:1000" {
		t.Errorf("last run: cwd %q user %q", last.Cwd, last.User)
	}
	ls, err := res.Image.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 2 {
		t.Errorf("%d layers, want 2 (noop and metadata steps add none)", len(ls))
	}
	cf, err := res.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.History) != 6 {
		t.Fatalf("%d history entries, want one per step (6): %+v", len(cf.History), cf.History)
	}
	var empty []bool
	for _, h := range cf.History {
		empty = append(empty, h.EmptyLayer)
	}
	if d := cmp.Diff([]bool{false, true, true, true, true, false}, empty); d != "" {
		t.Errorf("empty_layer per step (-want +got):\n%s", d)
	}
	if !strings.HasPrefix(cf.History[0].CreatedBy, "strata strata.yaml run: ") {
		t.Errorf("history names no recipe, or a line in it: %q", cf.History[0].CreatedBy)
	}
	if cf.Config.WorkingDir != "/srv" || cf.Config.User != "1000:1000" || cf.Config.Labels["l"] != "v" {
		t.Errorf("config: %+v", cf.Config)
	}
	if d := cmp.Diff([]string{"/bin/app"}, cf.Config.Entrypoint); d != "" {
		t.Errorf("entrypoint (-want +got):\n%s", d)
	}
}

func TestFailingStepStopsTheBuild(t *testing.T) {
	_, runner, _, events, err := buildFake(t, `from: scratch
steps:
  - run: write /a alpha
  - run: fail 3 something broke
    name: breaks
  - run: write /never reached
`)
	var se *StepError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v, want a *StepError", err)
	}
	if se.Status != 3 || se.Step != 2 || !strings.HasSuffix(se.Pos, "strata.yaml:4") {
		t.Errorf("step error: %+v", se)
	}
	if d := cmp.Diff([]string{"something broke"}, se.Tail); d != "" {
		t.Errorf("tail (-want +got):\n%s", d)
	}
	if len(runner.runs) != 2 {
		t.Errorf("%d runs, want 2: a failed step stops the build", len(runner.runs))
	}
	var kinds []EventKind
	for _, e := range events {
		if e.Step > 0 && e.Kind != EventInfo {
			kinds = append(kinds, e.Kind)
		}
	}
	if d := cmp.Diff([]EventKind{EventStart, EventDone, EventStart, EventOutput, EventFailed}, kinds); d != "" {
		t.Errorf("step events (-want +got):\n%s", d)
	}
}

// refusingMounter is overlay refusing every mount, as it does on a full
// disk.
type refusingMounter struct{}

func (refusingMounter) Mount(context.Context, layers.MountOptions) (chain.Mounted, error) {
	return nil, errors.New("creating overlay: no space left on device")
}

// TestStepSetUpFailureNamesTheStep: a step whose filesystem cannot be set
// up (its overlay refused) is named in the error, as a step that fails is.
func TestStepSetUpFailureNamesTheStep(t *testing.T) {
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "strata.yaml"), []byte("from: scratch\nsteps:\n  - run: write /a alpha\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(filepath.Join(ctxDir, "strata.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(t.Context(), Options{Root: t.TempDir(), Compression: commit.Gzip}, r, Deps{Runner: &fakeRunner{}, Mounter: refusingMounter{}})
	if err == nil || !strings.Contains(err.Error(), "strata.yaml:3: ") || !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("err = %v, want the step's FILE:LINE and the overlay's refusal", err)
	}
}
