package build

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
