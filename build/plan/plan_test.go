package plan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/recipe"
)

func TestStateAbs(t *testing.T) {
	for _, tc := range []struct{ wd, p, want string }{
		{"", "app/", "/app/"},
		{"/srv", "app/", "/srv/app/"},
		{"/srv", "a.txt", "/srv/a.txt"},
		{"/srv", "/etc/x", "/etc/x"},
		{"/srv", "../x/", "/x/"},
		{"/srv", ".", "/srv"},
		{"/", "/", "/"},
	} {
		if got := (State{Workdir: tc.wd}).Abs(tc.p); got != tc.want {
			t.Errorf("State{Workdir: %q}.Abs(%q) = %q, want %q", tc.wd, tc.p, got, tc.want)
		}
	}
}

// TestStateThroughSteps: env, workdir and user steps change the state the
// next steps see, in one place; the image config is the final state.
func TestStateThroughSteps(t *testing.T) {
	p := plan(t, `from: scratch
env: {A: "1", B: "2"}
steps:
  - run: "true"
  - env: {A: "3", C: "4"}
  - workdir: srv
  - copy: x
    to: rel/
  - workdir: sub
  - user: app
  - run: "true"
    mounts: [{type: tmpfs, target: tmp}]
`, nil)
	st := p.Stages[0]
	if d := cmp.Diff([]string{"A=1", "B=2"}, st.Steps[0].State.Environ()); d != "" {
		t.Errorf("env of step 1 (-want +got):\n%s", d)
	}
	if got := st.Steps[3].Dest; got != "/srv/rel/" {
		t.Errorf("copy to rel/ after workdir srv: %q, want /srv/rel/", got)
	}
	last := st.Steps[6]
	if d := cmp.Diff([]string{"A=3", "B=2", "C=4"}, last.State.Environ()); d != "" {
		t.Errorf("env of the last step (-want +got):\n%s", d)
	}
	if last.State.Cwd() != "/srv/sub" || last.State.User != "app" || last.Mounts[0].Target != "/srv/sub/tmp" {
		t.Errorf("last step: cwd %q user %q mount %q", last.State.Cwd(), last.State.User, last.Mounts[0].Target)
	}
	if st.Final.Workdir != "/srv/sub" {
		t.Errorf("final workdir %q", st.Final.Workdir)
	}
}

// TestPlanReportsEveryProblem: missing copy sources in two steps and a
// missing secret are all reported, each with its position.
func TestPlanReportsEveryProblem(t *testing.T) {
	_, err := makePlan(t, `from: scratch
steps:
  - copy: missing-one
    to: /a
  - copy: [x, missing-two]
    to: /b/
  - run: "true"
    mounts: [{type: secret, id: npmrc, target: /root/.npmrc}]
`, nil)
	if err == nil {
		t.Fatal("the plan of a broken recipe succeeded")
	}
	for _, want := range []string{`strata.yaml:3:5: copy source "missing-one" does not exist in the build context`,
		`strata.yaml:5:5: copy source "missing-two" does not exist`, `strata.yaml:8:14: step 3 needs secret "npmrc"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func makePlan(t *testing.T, yaml string, secrets map[string][]byte) (*Plan, error) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range map[string]string{"strata.yaml": yaml, "x": "x"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := recipe.Load(filepath.Join(dir, "strata.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return Make(context.Background(), Options{Secrets: secrets}, r)
}

func plan(t *testing.T, yaml string, secrets map[string][]byte) *Plan {
	t.Helper()
	p, err := makePlan(t, yaml, secrets)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLayoutRefWithColonTag: oci-layout://D:m:1 names the image "m:1" of
// the layout D, as strata itself names a layout's images by --tag.
func TestLayoutRefWithColonTag(t *testing.T) {
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "index.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := recipe.ParseBase("oci-layout://"+d+":m:1", "/")
	if err != nil {
		t.Fatal(err)
	}
	src, err := Source(b, commit.RegistryOptions{})
	if err != nil || src.Path != d || src.Tag != "m:1" {
		t.Errorf("Source(%+v) = %+v, %v; want %s and tag m:1", b, src, err, d)
	}
	b, err = recipe.ParseBase("oci-layout://"+d+":example.com/org/app:1", "/")
	if err != nil {
		t.Fatal(err)
	}
	if src, err := Source(b, commit.RegistryOptions{}); err != nil || src.Path != d || src.Tag != "example.com/org/app:1" {
		t.Errorf("Source(%+v) = %+v, %v; want %s and tag example.com/org/app:1", b, src, err, d)
	}
	b, _ = recipe.ParseBase("oci-layout://"+d+":latest", "/")
	if src, _ := Source(b, commit.RegistryOptions{}); src.Path != d || src.Tag != "latest" {
		t.Errorf("a plain tag: %+v", src)
	}
}

// TestCheckContextLeavesBaseEnvNamesToThePlan: a copy source naming what
// only the base image's env defines is not refused before the base is
// pulled; a missing plain source beside it still is.
func TestCheckContextLeavesBaseEnvNamesToThePlan(t *testing.T) {
	dir := t.TempDir()
	yaml := "from: registry.invalid/base:1\nsteps:\n  - copy: [\"${SRCDIR}/a.txt\", missing.txt]\n    to: /x/\n"
	if err := os.WriteFile(filepath.Join(dir, "strata.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(filepath.Join(dir, "strata.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	err = CheckContext(r, r.Stages, "")
	if err == nil || !strings.Contains(err.Error(), `copy source "missing.txt" does not exist`) {
		t.Errorf("CheckContext = %v, want the missing plain source reported", err)
	}
	if err != nil && strings.Contains(err.Error(), "SRCDIR") {
		t.Errorf("CheckContext refused a source the base's env may define: %v", err)
	}
}

// TestPlatformPinsMustFitTheTarget: a stage continuing one built for
// another platform, and an image stage pinned to another platform than
// the build's, are refused before anything runs (each would be labelled
// one platform and hold another's files); an unpinned stage continuing a
// pinned one takes its platform.
func TestPlatformPinsMustFitTheTarget(t *testing.T) {
	amd, arm := v1.Platform{OS: "linux", Architecture: "amd64"}, v1.Platform{OS: "linux", Architecture: "arm64"}
	for _, c := range []struct {
		name, yaml string
		targets    []v1.Platform
		want       string // "" : no error
	}{
		{"continued stage of another platform", `stages:
  - name: b
    from: scratch
    platform: linux/amd64
    steps: [{file: /b, content: x}]
  - name: final
    from: b
`, []v1.Platform{amd, arm}, `strata.yaml:4:15: the image's stage is built for linux/amd64 (its platform: or that of the stage it continues), but this build is for linux/arm64`},
		{"continued stage pinned to another platform", `stages:
  - name: b
    from: scratch
    platform: linux/amd64
  - name: final
    from: b
    platform: linux/arm64
`, nil, `strata.yaml:6:11: final continues b, which is built for linux/amd64, not linux/arm64`},
		{"cross-compiling stage continues a build-platform stage", `stages:
  - name: toolchain
    from: scratch
    platform: linux/amd64
  - name: build
    from: toolchain
    steps: [{file: /out, content: "${TARGETARCH}"}]
  - name: app
    from: scratch
    steps:
      - copy: /out
        from: build
        to: /out
`, []v1.Platform{amd, arm}, ""},
		{"pinned image stage, another target", "from: scratch\nplatform: linux/arm64\nsteps: [{file: /b, content: x}]\n",
			[]v1.Platform{amd}, "the image's stage is built for linux/arm64 (its platform: or that of the stage it continues), but this build is for linux/amd64"},
		{"pinned image stage, its own target", "from: scratch\nplatform: linux/arm64\nsteps: [{file: /b, content: x}]\n",
			[]v1.Platform{arm}, ""},
		{"pinned, continued, no target", `stages:
  - name: b
    from: scratch
    platform: linux/arm64
  - name: final
    from: b
`, nil, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "strata.yaml"), []byte(c.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			r, err := recipe.Load(filepath.Join(dir, "strata.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			targets := []Target{{Recipe: r}}
			if c.targets != nil {
				targets = nil
				for _, p := range c.targets {
					rp, err := r.ForPlatform(recipe.Platform{OS: p.OS, Arch: p.Architecture})
					if err != nil {
						t.Fatal(err)
					}
					targets = append(targets, Target{Recipe: rp, Platform: &p})
				}
			}
			plans, err := MakeAll(t.Context(), Options{}, targets)
			switch {
			case c.want == "" && err != nil:
				t.Fatal(err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want one saying %q", err, c.want)
			case c.want == "" && c.targets == nil:
				final := plans[0].Stages[len(plans[0].Stages)-1]
				if final.Platform.Architecture != "arm64" {
					t.Errorf("the stage continuing an arm64 stage is built for %s", final.Platform)
				}
			}
		})
	}
}

// TestCopyToDotIsTheWorkdir: to: . and to: ./ name the working dir, a
// directory (docker's COPY a.txt . and COPY a b ./), also where it is a
// stage's parent's and not known when the recipe is read.
func TestCopyToDotIsTheWorkdir(t *testing.T) {
	p := plan(t, `stages:
  - name: base
    from: scratch
    workdir: /app
  - from: base
    steps:
      - copy: x
        to: .
      - copy: x
        to: ./
      - copy: [x, strata.yaml]
        to: ./
      - workdir: ./sub/
`, nil)
	st := p.Stages[len(p.Stages)-1]
	for i, s := range st.Steps[:3] {
		if s.Dest != "/app/" {
			t.Errorf("step %d: dest %q, want /app/", i+1, s.Dest)
		}
	}
	if st.Final.Workdir != "/app/sub" {
		t.Errorf("workdir ./sub/: %q, want /app/sub", st.Final.Workdir)
	}
}

// TestStageContinuesItsParentsState: a stage built on another starts from
// that stage's final env, working dir, user and shell, as docker's FROM
// stage does; the top-level values are not applied over them again.
func TestStageContinuesItsParentsState(t *testing.T) {
	p := plan(t, `env: {MODE: default}
workdir: /top
user: "1000"
stages:
  - name: a
    from: scratch
    workdir: /srv
    shell: [/bin/sh, -ec]
    steps:
      - env: {MODE: release}
      - user: root
  - name: b
    from: a
    steps:
      - run: echo "$MODE"
`, nil)
	b := p.Stages[len(p.Stages)-1]
	run := b.Steps[0]
	if got := run.State.Environ(); !slices.Contains(got, "MODE=release") {
		t.Errorf("env %q, want MODE=release", got)
	}
	if run.State.Cwd() != "/srv" || run.State.User != "root" {
		t.Errorf("cwd %q user %q, want /srv and root", run.State.Cwd(), run.State.User)
	}
	if got := run.Recipe.Run.Shell; !slices.Equal(got, []string{"/bin/sh", "-ec"}) {
		t.Errorf("shell %q, want a's [/bin/sh -ec]", got)
	}
	if b.Final.Workdir != "/srv" || b.Final.User != "root" {
		t.Errorf("the image's workdir %q user %q", b.Final.Workdir, b.Final.User)
	}
}

// TestFingerprintsMadeOnce: a stage's fingerprint takes those of the
// stages it depends on, each made once: 40 stages, each copying from the
// two before it, plan at once (made again at each use, they took
// exponential time: a minute at 32 stages).
func TestFingerprintsMadeOnce(t *testing.T) {
	var b strings.Builder
	b.WriteString("stages:\n")
	for i := range 40 {
		fmt.Fprintf(&b, "  - name: s%d\n    from: scratch\n    steps:\n      - file: /x\n        content: x\n", i)
		for _, j := range []int{i - 1, i - 2} {
			if j >= 0 {
				fmt.Fprintf(&b, "      - copy: /x\n        from: s%d\n        to: /from%d\n", j, j)
			}
		}
	}
	done := make(chan *Plan, 1)
	go func() {
		p := plan(t, b.String(), nil)
		for _, sp := range p.Stages {
			p.Fingerprint(sp) // as the build asks, stage by stage
		}
		done <- p
	}()
	select {
	case p := <-done:
		if len(p.Stages) != 40 {
			t.Errorf("%d stages planned", len(p.Stages))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("planning 40 stages took over 10 s")
	}
}

// TestFingerprintNamesTheStage: two stages that build the same files
// under other step names are two stages (the history names each one's
// steps), not one shared.
func TestFingerprintNamesTheStage(t *testing.T) {
	p := plan(t, `stages:
  - name: x
    from: scratch
    steps: [{file: /hi, content: hi, name: step of x}]
  - name: y
    from: scratch
    steps: [{file: /hi, content: hi, name: step of y}]
  - name: z
    from: y
    steps:
      - copy: /hi
        from: x
        to: /hi-x
`, nil)
	x, _ := p.StageByIndex(0)
	y, _ := p.StageByIndex(1)
	if p.Fingerprint(x) == p.Fingerprint(y) {
		t.Error("stages x and y have one fingerprint: one would be built for both, with its history")
	}
}

// TestCacheIDIsTheAbsoluteTarget: a cache mount with no id is the cache
// of its absolute target, however the target is written: two stages
// mounting .cache in /src share one, whether the recipe or the stage
// they continue set the working dir.
func TestCacheIDIsTheAbsoluteTarget(t *testing.T) {
	p := plan(t, `stages:
  - name: deps
    from: scratch
    steps:
      - workdir: /src
      - run: fetch
        mounts: [{type: cache, target: .cache}]
  - name: build
    from: deps
    steps:
      - run: compile
        mounts: [{type: cache, target: .cache}, {type: cache, target: /x, id: mine}]
`, nil)
	var ids []string
	for _, sp := range p.Stages {
		for _, s := range sp.Steps {
			for _, m := range s.Mounts {
				ids = append(ids, m.ID)
			}
		}
	}
	if want := []string{"/src/.cache", "/src/.cache", "mine"}; !slices.Equal(ids, want) {
		t.Errorf("cache ids %q, want %q", ids, want)
	}
}

// mixedLayout is a layout whose "latest" is an index of an amd64 and an
// arm64 image created at the times given.
func mixedLayout(t *testing.T, created map[string]time.Time) string {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := mutate.ConfigFile(mutate.MediaType(empty.Image, types.OCIManifestSchema1), &v1.ConfigFile{
			OS: "linux", Architecture: arch, Created: v1.Time{Time: created[arch]}, RootFS: v1.RootFS{Type: "layers"}})
		if err != nil {
			t.Fatal(err)
		}
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "latest"})); err != nil {
		t.Fatal(err)
	}
	return dir
}

// planTargets plans yaml for linux/amd64 and linux/arm64.
func planTargets(t *testing.T, yaml string) []*Plan {
	t.Helper()
	ctx := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctx, "strata.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(filepath.Join(ctx, "strata.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var targets []Target
	for _, arch := range []string{"amd64", "arm64"} {
		p := v1.Platform{OS: "linux", Architecture: arch}
		rp, err := r.ForPlatform(recipe.Platform{OS: "linux", Arch: arch})
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, Target{Recipe: rp, Platform: &p})
	}
	plans, err := MakeAll(t.Context(), Options{}, targets)
	if err != nil {
		t.Fatal(err)
	}
	return plans
}

// TestBuildPlatformStageSharedAcrossEpochs: a ${BUILDPLATFORM} stage's
// layers are made with the epoch of its own base, the same in every
// target, so it is one stage for all (built once), however the targets'
// bases differ in age; each target's image keeps its own epoch.
func TestBuildPlatformStageSharedAcrossEpochs(t *testing.T) {
	created := map[string]time.Time{"amd64": time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), "arm64": time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)}
	dir := mixedLayout(t, created)
	plans := planTargets(t, `stages:
  - name: tool
    from: oci-layout://`+dir+`:latest
    platform: linux/amd64
    steps: [{run: make-tool}]
  - name: app
    from: oci-layout://`+dir+`:latest
    steps:
      - copy: /tool
        from: tool
        to: /tool
`)
	tool0, _ := plans[0].StageByIndex(0)
	tool1, _ := plans[1].StageByIndex(0)
	if plans[0].Fingerprint(tool0) != plans[1].Fingerprint(tool1) {
		t.Errorf("the tool stage differs between the targets: epochs %v and %v", tool0.Epoch, tool1.Epoch)
	}
	if !tool0.Epoch.Equal(created["amd64"]) {
		t.Errorf("the tool stage's epoch %v, want its base's %v", tool0.Epoch, created["amd64"])
	}
	for i, arch := range []string{"amd64", "arm64"} {
		if got := plans[i].Epoch; !got.Equal(created[arch]) {
			t.Errorf("%s image's epoch %v, want %v", arch, got, created[arch])
		}
	}
}

// TestEpochPerPlatform: each platform's epoch comes from its own base, so
// a platform's image is the same whichever platforms are built with it.
func TestEpochPerPlatform(t *testing.T) {
	created := map[string]time.Time{"amd64": time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), "arm64": time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)}
	plans := planTargets(t, "from: oci-layout://"+mixedLayout(t, created)+":latest\nsteps: []\n")
	for i, arch := range []string{"amd64", "arm64"} {
		if got := plans[i].Epoch; got == nil || !got.Equal(created[arch]) {
			t.Errorf("%s epoch %v, want its base's %v", arch, got, created[arch])
		}
	}
}

// TestTargetArgsOfAnAdoptedPlatform: with no platform asked for, a base
// of another platform than the host's is built for (as buildx runs it
// under emulation), and ${TARGETARCH} names that platform, the image's.
func TestTargetArgsOfAnAdoptedPlatform(t *testing.T) {
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	dir := configLayout(t, &v1.ConfigFile{OS: "linux", Architecture: other, RootFS: v1.RootFS{Type: "layers"}})
	p := plan(t, "from: oci-layout://"+dir+":latest\nsteps:\n  - file: /arch\n    content: ${TARGETARCH}\n", nil)
	st := p.Stages[0]
	if st.Platform.Architecture != other || st.Steps[0].Recipe.File.Content != other {
		t.Errorf("built for %s with TARGETARCH %q, want both %s", st.Platform.Architecture, st.Steps[0].Recipe.File.Content, other)
	}
}

// TestAdoptedPlanKeepsWarnings: the plan made again for the base's
// platform warns as one asked for with --platform does: a copy from an
// image of the host's platform into the other platform's image.
func TestAdoptedPlanKeepsWarnings(t *testing.T) {
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	base := configLayout(t, &v1.ConfigFile{OS: "linux", Architecture: other, RootFS: v1.RootFS{Type: "layers"}})
	native := configLayout(t, &v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH, RootFS: v1.RootFS{Type: "layers"}})
	p := plan(t, "from: oci-layout://"+base+":latest\nsteps:\n  - copy: /bin/busybox\n    from: oci-layout://"+native+":latest\n    to: /bb\n", nil)
	want := []string{fmt.Sprintf("strata.yaml:3:5: the copy takes the files of oci-layout://%s:latest, a linux/%s image, into the linux/%s image", native, runtime.GOARCH, other)}
	var got []string
	for _, w := range p.Warnings {
		got = append(got, w[strings.Index(w, "strata.yaml:"):])
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("warnings (-want +got):\n%s", d)
	}
}

// TestBareNamesOfTheBaseWarned: a $NAME without braces, in a field no
// shell reads, that only the base image's env defines is warned of once
// the base is known (docker would expand it; strata keeps it as it is).
// Names the recipe defines are the recipe's own warning; names nothing
// defines, and run commands, are not warned of.
func TestBareNamesOfTheBaseWarned(t *testing.T) {
	dir := configLayout(t, &v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH, RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{Env: []string{"PATH=/bin", "APP_HOME=/srv/app", "GOPATH=/go"}}})
	p := plan(t, "from: oci-layout://"+dir+":latest\nargs: {A: x}\nenv: {P: \"$GOPATH/bin:${PATH}\", Q: $A}\nsteps:\n  - workdir: $APP_HOME\n  - run: echo $APP_HOME\n  - file: /n/$NOPE\n    content: $APP_HOME\n", nil)
	want := []string{
		"strata.yaml:1:1: env: P: $GOPATH is kept as it is: strata expands ${NAME} only, and the base image's env defines GOPATH (docker would expand it); write ${GOPATH}, or $${GOPATH} for a literal reference",
		"strata.yaml:5:5: workdir: $APP_HOME is kept as it is: strata expands ${NAME} only, and the base image's env defines APP_HOME (docker would expand it); write ${APP_HOME}, or $${APP_HOME} for a literal reference",
	}
	var got []string
	for _, w := range p.Warnings {
		got = append(got, w[strings.Index(w, "strata.yaml:"):])
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("warnings (-want +got):\n%s", d)
	}
}

// configLayout writes an OCI layout holding an image with no layers and
// the config cf, tagged latest, and returns its dir.
func configLayout(t *testing.T, cf *v1.ConfigFile) string {
	t.Helper()
	img, err := mutate.ConfigFile(mutate.MediaType(empty.Image, types.OCIManifestSchema1), cf)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(mutate.ConfigMediaType(img, types.OCIConfigJSON), layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": "latest"})); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestBareArgInRunWarned: a run step's $V, where V is an arg and no env
// sets it, is empty in the step (docker's RUN would see the ARG): warned.
// ${V}, an arg some env sets, a name of the base's env, and the exec form
// are not.
func TestBareArgInRunWarned(t *testing.T) {
	dir := configLayout(t, &v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH, RootFS: v1.RootFS{Type: "layers"},
		Config: v1.Config{Env: []string{"PATH=/bin", "HOME=/root"}}})
	p := plan(t, "from: oci-layout://"+dir+":latest\nargs: {V: \"1\", E: \"2\", HOME: /h}\nenv: {E: \"${E}\"}\nsteps:\n"+
		"  - run: echo $V ${V} $E $HOME\n  - run: [echo, $V]\n  - run: echo ${V}\n", nil)
	want := []string{
		"strata.yaml:5:5: run: $V is empty in the step: V is an arg, and args reach a run step only as strata expands ${V} (docker's RUN has its ARGs in the environment); write ${V}",
	}
	var got []string
	for _, w := range p.Warnings {
		got = append(got, w[strings.Index(w, "strata.yaml:"):])
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("warnings (-want +got):\n%s", d)
	}
}

// TestCopyFromAnotherPlatformsImageWarned: a copy from a single-platform
// image of another platform than the stage's (a multi-platform build's
// second platform) takes its files as they are: warned, naming both; one
// of the stage's platform is not.
func TestCopyFromAnotherPlatformsImageWarned(t *testing.T) {
	other := map[string]string{"amd64": "arm64"}[runtime.GOARCH]
	if other == "" {
		other = "amd64"
	}
	foreign := configLayout(t, &v1.ConfigFile{OS: "linux", Architecture: other, RootFS: v1.RootFS{Type: "layers"}})
	native := configLayout(t, &v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH, RootFS: v1.RootFS{Type: "layers"}})
	p := plan(t, "from: scratch\nsteps:\n  - copy: /bin/busybox\n    from: oci-layout://"+foreign+":latest\n    to: /bb\n"+
		"  - copy: /bin/busybox\n    from: oci-layout://"+native+":latest\n    to: /bb2\n", nil)
	want := []string{fmt.Sprintf("strata.yaml:3:5: the copy takes the files of oci-layout://%s:latest, a linux/%s image, into the linux/%s image", foreign, other, runtime.GOARCH)}
	var got []string
	for _, w := range p.Warnings {
		got = append(got, w[strings.Index(w, "strata.yaml:"):])
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("warnings (-want +got):\n%s", d)
	}
}
