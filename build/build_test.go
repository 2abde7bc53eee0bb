package build

// Orchestration tests: the step loop with a fake runner and a fake mounter
// (the step's rootfs is its upper dir), so they run without root. The real
// runner and mounter are tested for real in build/sandbox, layers and the
// end-to-end tests of cmd/strata.

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stratabuild/strata/build/sandbox"
	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/recipe"
)

// fakeMounter hands out the upper dir itself as the rootfs: enough for
// steps that only add files.
type fakeMounter struct {
	mu      sync.Mutex
	mounted int
}

type fakeMount struct {
	m      *fakeMounter
	target string
	once   sync.Once
}

func (f *fakeMounter) Mount(_ context.Context, o layers.MountOptions) (Mounted, error) {
	f.mu.Lock()
	f.mounted++
	f.mu.Unlock()
	return &fakeMount{m: f, target: o.Upper}, nil
}

func (m *fakeMount) Target() string { return m.target }
func (m *fakeMount) Unmount() error {
	m.once.Do(func() {
		m.m.mu.Lock()
		m.m.mounted--
		m.m.mu.Unlock()
	})
	return nil
}

// fakeRunner interprets a tiny command language: "write PATH TEXT" creates
// a file, "fail N TEXT" prints TEXT and exits N, "noop" does nothing.
type fakeRunner struct {
	runs []sandbox.Options
}

func (f *fakeRunner) Run(_ context.Context, o sandbox.Options) error {
	f.runs = append(f.runs, o)
	cmd := o.Args[len(o.Args)-1]
	cmd, _, _ = strings.Cut(cmd, " ;; ") // a note changes the step, not what it does
	fields := strings.SplitN(cmd, " ", 3)
	switch fields[0] {
	case "write":
		p := filepath.Join(o.Rootfs, fields[1])
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, []byte(fields[2]+"\n"), 0o644)
	case "fail":
		o.Stdout.Write([]byte(fields[2] + "\n"))
		return &sandbox.ExitError{Status: int(fields[1][0] - '0')}
	case "noop":
		return nil
	}
	return errors.New("fake runner: unknown command " + cmd)
}

func buildFake(t *testing.T, yaml string) (*Result, *fakeRunner, *fakeMounter, []Event, error) {
	t.Helper()
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "strata.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(filepath.Join(ctxDir, "strata.yaml"))
	if err != nil {
		t.Fatalf("recipe: %v", err)
	}
	runner, mounter := &fakeRunner{}, &fakeMounter{}
	var events []Event
	root := t.TempDir()
	res, err := Build(context.Background(), Options{Root: root, Compression: "gzip"}, r, Deps{
		Runner: runner, Mounter: mounter, Progress: func(e Event) { events = append(events, e) },
	})
	if mounter.mounted != 0 {
		t.Errorf("%d mounts left after the build", mounter.mounted)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "mnt")); len(entries) > 0 {
		t.Errorf("mount points left behind: %v", entries)
	}
	return res, runner, mounter, events, err
}

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
	if !strings.Contains(cf.History[0].CreatedBy, "strata.yaml:4") {
		t.Errorf("history names no recipe position: %q", cf.History[0].CreatedBy)
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
