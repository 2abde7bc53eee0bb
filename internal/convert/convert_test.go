package convert

import (
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stratabuild/strata/recipe"
)

// conv converts df and loads the recipe; it returns the recipe, its text
// and the warnings' messages.
func conv(t *testing.T, df string, opts ...recipe.Option) (*recipe.Recipe, string, []string) {
	t.Helper()
	res, err := Convert("Dockerfile", []byte(df))
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	var ws []string
	for _, w := range res.Warnings {
		ws = append(ws, w.String())
	}
	r, err := recipe.Parse("strata.yaml", res.Recipe, opts...)
	if err != nil {
		t.Fatalf("the recipe does not load:\n%v\n%s", err, res.Recipe)
	}
	return r, string(res.Recipe), ws
}

func lastStage(r *recipe.Recipe) *recipe.Stage { return r.Stages[len(r.Stages)-1] }

// TestValues checks that values docker expands keep their meaning: quotes
// and escapes processed, variables as ${NAME}, literal ${ escaped. The
// values of one ENV see the variables as they were before it, in docker
// as in strata.
func TestValues(t *testing.T) {
	r, _, ws := conv(t, `FROM scratch
ENV A="a b" B='$lit ${lit}' C=\$HOME D=${A}x E=$A-$B
COPY ["x y.txt", "/dst dir/"]
`)
	s := lastStage(r)
	want := []recipe.EnvVar{{Name: "A", Value: "a b"}, {Name: "B", Value: "$lit ${lit}"}, {Name: "C", Value: "$HOME"}, {Name: "D", Value: "x"}, {Name: "E", Value: "-"}}
	if diff := cmp.Diff(want, s.Steps[0].Env); diff != "" {
		t.Errorf("env (-docker's values +recipe's):\n%s", diff)
	}
	if got := s.Steps[1].Copy; got.Sources[0] != "x y.txt" || got.To != "/dst dir/" {
		t.Errorf("copy = %q to %q", got.Sources, got.To)
	}
	if len(ws) != 0 {
		t.Errorf("warnings: %q", ws)
	}
}

// TestEnvNameTwice: an ENV setting a name twice gives it the last value,
// as docker does, in one env mapping strata accepts; the values of the
// line still see the name's value from before the line.
func TestEnvNameTwice(t *testing.T) {
	r, text, ws := conv(t, "FROM scratch\nENV A=0\nENV A=1 B=x$A A=2\n")
	want := []recipe.EnvVar{{Name: "A", Value: "2"}, {Name: "B", Value: "x0"}}
	if diff := cmp.Diff(want, lastStage(r).Steps[1].Env); diff != "" {
		t.Errorf("env (-docker's values +recipe's):\n%s\n%s", diff, text)
	}
	if len(ws) != 0 {
		t.Errorf("warnings: %q", ws)
	}
}

// TestRunLeftToTheShell checks that RUN, CMD and ENTRYPOINT keep their
// text for the shell: strata must not expand a ${NAME} in them.
func TestRunLeftToTheShell(t *testing.T) {
	r, _, _ := conv(t, `FROM busybox
RUN echo ${HOME} $PATH "${X:-y}"
RUN ["echo", "${HOME}", "$PATH"]
ENTRYPOINT ["/bin/echo", "${A}"]
CMD echo ${B}
`)
	s := lastStage(r)
	if got, want := s.Steps[0].Run.Command, `echo ${HOME} $PATH "${X:-y}"`; got != want {
		t.Errorf("shell form = %q, want %q", got, want)
	}
	if got, want := s.Steps[1].Run.Args, []string{"echo", "${HOME}", "$PATH"}; !cmp.Equal(got, want) {
		t.Errorf("exec form = %q, want %q", got, want)
	}
	if got, want := r.Image.Entrypoint, []string{"/bin/echo", "${A}"}; !cmp.Equal(got, want) {
		t.Errorf("entrypoint = %q, want %q", got, want)
	}
	if got, want := r.Image.Cmd, []string{"/bin/sh", "-c", "echo ${B}"}; !cmp.Equal(got, want) {
		t.Errorf("cmd = %q, want %q", got, want)
	}
	if got := s.Steps[0].Run.Network; got != recipe.NetworkHost {
		t.Errorf("RUN's network = %v, want host (docker's RUN reaches the network)", got)
	}
}

// TestArgs checks docker's ARG scoping: global args for FROM, args
// declared in a stage reach its values and its RUN env, a global arg not
// declared again in the stage is empty there.
func TestArgs(t *testing.T) {
	r, text, ws := conv(t, `ARG BASE=busybox
ARG V=1
ARG UNUSED=u
FROM ${BASE} AS one
ARG V
ARG EXTRA=x-${V}
RUN echo $V
COPY a /v${V}/${UNUSED}
`)
	if got := r.Stages[0].From.Ref; got != "busybox:latest" {
		t.Errorf("from = %q, want busybox:latest", got)
	}
	var names []string
	for _, a := range r.Args {
		names = append(names, a.Name+"="+a.Default)
	}
	if want := []string{"BASE=busybox:latest", "V=1", "UNUSED=u", "EXTRA=x-1"}; !cmp.Equal(names, want) {
		t.Errorf("args = %q, want %q", names, want)
	}
	s := r.Stages[0]
	if got, want := s.Steps[0].Run.Env, []recipe.EnvVar{{Name: "V", Value: "1"}, {Name: "EXTRA", Value: "x-1"}}; !cmp.Equal(got, want) {
		t.Errorf("run env = %v, want %v", got, want)
	}
	if got := s.Steps[1].Copy.To; got != "/v1/" {
		t.Errorf("copy to = %q, want /v1/ (UNUSED is not declared in the stage)", got)
	}
	wantWarnings := []string{
		`Dockerfile:6: ARG EXTRA's default "x-${V}" refers to other variables; written as its value "x-1" (strata does not expand args' defaults)`,
		`Dockerfile:8: $UNUSED is empty here in docker: ARG UNUSED is declared, but not in this stage (declare it again with ARG UNUSED after FROM); converted as empty`,
	}
	if diff := cmp.Diff(wantWarnings, ws); diff != "" {
		t.Errorf("warnings (-want +got):\n%s\n%s", diff, text)
	}
	r, _, _ = conv(t, "FROM busybox\nARG V=1\nRUN true\n", recipe.WithBuildArgs(map[string]string{"V": "2"}))
	if got := lastStage(r).Steps[0].Run.Env; !cmp.Equal(got, []recipe.EnvVar{{Name: "V", Value: "2"}}) {
		t.Errorf("a --build-arg does not reach the run env: %v", got)
	}
}

// TestArgAfterEnv checks docker's ARG over an earlier ENV of the same
// name: RUN and the stage's later values see the ARG's value, the image
// config keeps the ENV's. strata's env steps win over args, so the value
// is written out in the steps (a warning says a --build-arg does not
// change it); the image: section, which sees the args, gets ${NAME}.
func TestArgAfterEnv(t *testing.T) {
	df := "FROM busybox\nENV MODE=prod\nARG MODE=dev\nRUN echo $MODE\nENV DERIVED=$MODE\nLABEL mode=$MODE\n"
	r, text, ws := conv(t, df)
	s := lastStage(r)
	if got, want := s.Steps[1].Run.Env, []recipe.EnvVar{{Name: "MODE", Value: "dev"}}; !cmp.Equal(got, want) {
		t.Errorf("run env = %v, want %v\n%s", got, want, text)
	}
	if got, want := s.Steps[2].Env, []recipe.EnvVar{{Name: "DERIVED", Value: "dev"}}; !cmp.Equal(got, want) {
		t.Errorf("ENV DERIVED=$MODE = %v, want %v\n%s", got, want, text)
	}
	if got := r.Image.Labels["mode"]; got != "dev" {
		t.Errorf("LABEL mode=$MODE = %q, want dev\n%s", got, text)
	}
	want := []string{`Dockerfile:3: ARG MODE follows ENV MODE (line 2): docker's RUN and later values of the stage see the ARG's "dev", the image config the ENV's value; strata's env steps win over args, so the recipe's steps get "dev" written out where they use $MODE, which a --build-arg MODE does not change`}
	if diff := cmp.Diff(want, ws); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	r, _, _ = conv(t, df, recipe.WithBuildArgs(map[string]string{"MODE": "m"}))
	if got := r.Image.Labels["mode"]; got != "m" {
		t.Errorf("with --build-arg MODE=m, LABEL mode=$MODE = %q, want m", got)
	}

	// An ENV after the ARG wins, in docker as in strata: the run step
	// gets it from the env step.
	r, text, ws = conv(t, "FROM busybox\nARG MODE=dev\nENV MODE=prod\nRUN echo $MODE\n")
	if got := lastStage(r).Steps[1].Run.Env; got != nil || len(ws) != 0 {
		t.Errorf("run env = %v, warnings %q; want none\n%s", got, ws, text)
	}

	// ENV V=$V then a child's ARG V: the ENV's value is the arg's, build
	// arg included, so nothing is written out and nothing is lost.
	df = "ARG V=1\nFROM busybox AS a\nARG V\nENV V=$V\nFROM a\nARG V\nRUN echo $V\nLABEL v=$V\n"
	r, text, ws = conv(t, df, recipe.WithBuildArgs(map[string]string{"V": "2"}))
	if got := lastStage(r).Steps[0].Run.Env; got != nil || len(ws) != 0 || r.Image.Labels["v"] != "2" {
		t.Errorf("run env = %v, label v=%q, warnings %q; want none, 2, none\n%s", got, r.Image.Labels["v"], ws, text)
	}
}

// TestArgWithoutDefault checks the warnings about an ARG without a
// default: docker sets it for RUN only when a --build-arg gives it;
// strata's arg is "" without one, or, after an ENV of the name, does not
// reach the steps.
func TestArgWithoutDefault(t *testing.T) {
	r, text, ws := conv(t, "FROM busybox\nARG OPT\nRUN echo $OPT\n", recipe.WithBuildArgs(map[string]string{"OPT": "x"}))
	if got, want := lastStage(r).Steps[0].Run.Env, []recipe.EnvVar{{Name: "OPT", Value: "x"}}; !cmp.Equal(got, want) {
		t.Errorf("with --build-arg OPT=x, run env = %v, want %v\n%s", got, want, text)
	}
	want := []string{`Dockerfile:2: ARG OPT has no default: without --build-arg OPT, docker leaves $OPT as it was for RUN (unset, or the base image's value); strata's args need a value: the recipe gives OPT "", set even where the base image's env has a value for it`}
	if diff := cmp.Diff(want, ws); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	r, text, ws = conv(t, "FROM busybox\nENV OPT=e\nARG OPT\nRUN echo $OPT\n")
	if got := lastStage(r).Steps[1].Run.Env; got != nil {
		t.Errorf("run env = %v, want none (the ENV's value)\n%s", got, text)
	}
	want = []string{`Dockerfile:3: ARG OPT has no default and follows ENV OPT (line 2): the run steps get the ENV's value, as in docker without --build-arg OPT; but strata's env steps win over args, so a --build-arg OPT does not reach them, where docker's does`}
	if diff := cmp.Diff(want, ws); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// TestArgForFrom checks an ARG without default that FROM needs: the
// recipe needs --build-arg too.
func TestArgForFrom(t *testing.T) {
	res, err := Convert("Dockerfile", []byte("ARG BASE\nFROM $BASE\nRUN true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := recipe.Parse("strata.yaml", res.Recipe); err == nil {
		t.Errorf("the recipe loads without BASE; want an error asking for it")
	}
	if _, err := recipe.Parse("strata.yaml", res.Recipe, recipe.WithBuildArgs(map[string]string{"BASE": "busybox:1"})); err != nil {
		t.Errorf("with --build-arg BASE: %v", err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0].Msg, "--build-arg BASE=") {
		t.Errorf("warnings = %v, want one asking for --build-arg BASE", res.Warnings)
	}
	// Declared again in the stage, it is still one that must be given:
	// no warning that it is "" without a --build-arg.
	res, err = Convert("Dockerfile", []byte("ARG BASE\nFROM $BASE\nARG BASE\nRUN echo $BASE\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0].Msg, "--build-arg BASE=") {
		t.Errorf("warnings = %v, want one asking for --build-arg BASE", res.Warnings)
	}
}

// TestPredefinedArgs checks that buildx's predefined args are left to
// strata's predefined args, not declared.
func TestPredefinedArgs(t *testing.T) {
	res, err := Convert("Dockerfile", []byte("FROM --platform=$BUILDPLATFORM golang:1 AS b\nARG TARGETARCH\nRUN GOARCH=$TARGETARCH go build\n"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(res.Recipe)
	for _, want := range []string{"platform: ${BUILDPLATFORM}", "TARGETARCH: ${TARGETARCH}", "run: GOARCH=$TARGETARCH go build"} {
		if !strings.Contains(text, want) {
			t.Errorf("recipe lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "args:") {
		t.Errorf("predefined args declared in args:\n%s", text)
	}
}

// TestArgNotPredefinedByStrata: an ARG docker predefines but strata does
// not (BUILDVARIANT) is declared in args:, so the recipe loads.
func TestArgNotPredefinedByStrata(t *testing.T) {
	_, text, _ := conv(t, "FROM scratch\nARG BUILDVARIANT\nENV A=$BUILDVARIANT\n")
	if !strings.Contains(text, "args:") || !strings.Contains(text, "BUILDVARIANT") {
		t.Errorf("BUILDVARIANT not declared:\n%s", text)
	}
}

// TestImageConfig checks the image: section: inherited through FROM
// <stage>, ENTRYPOINT clearing the inherited CMD as docker does.
func TestImageConfig(t *testing.T) {
	for _, tc := range []struct {
		name, df        string
		entrypoint, cmd []string
	}{
		{"entrypoint clears inherited cmd", "FROM busybox AS a\nCMD [\"x\"]\nFROM a\nENTRYPOINT [\"/e\"]\n", []string{"/e"}, []string{}},
		{"cmd before entrypoint stays", "FROM busybox\nCMD [\"x\"]\nENTRYPOINT [\"/e\"]\n", []string{"/e"}, []string{"x"}},
		{"inherited", "FROM busybox AS a\nENTRYPOINT /e\nCMD [\"c\"]\nFROM a\nRUN true\n", []string{"/bin/sh", "-c", "/e"}, []string{"c"}},
		{"not set keeps the base's", "FROM busybox\nRUN true\n", nil, nil},
		{"empty entrypoint", "FROM busybox\nENTRYPOINT []\n", []string{}, []string{}},
		{"shell of SHELL", "FROM busybox\nSHELL [\"/bin/ash\", \"-c\"]\nCMD run me\n", nil, []string{"/bin/ash", "-c", "run me"}},
		{"shell of the parent stage's SHELL", "FROM busybox AS p\nSHELL [\"/bin/sh\", \"-ec\"]\nFROM p\nENTRYPOINT run me\n", []string{"/bin/sh", "-ec", "run me"}, []string{}},
		{"shell reset after the parent's SHELL", "FROM busybox AS p\nSHELL [\"/bin/sh\", \"-ec\"]\nFROM p\nSHELL [\"/bin/sh\", \"-c\"]\nCMD run me\n", nil, []string{"/bin/sh", "-c", "run me"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, text, _ := conv(t, tc.df)
			if !cmp.Equal(r.Image.Entrypoint, tc.entrypoint) || !cmp.Equal(r.Image.Cmd, tc.cmd) {
				t.Errorf("entrypoint %#v cmd %#v, want %#v %#v\n%s", r.Image.Entrypoint, r.Image.Cmd, tc.entrypoint, tc.cmd, text)
			}
		})
	}
	r, _, ws := conv(t, "FROM busybox AS a\nLABEL a=1 b=2\nEXPOSE 80 7000-7001/udp\nVOLUME /v\nENV P=9\nFROM a\nLABEL b=3\nEXPOSE $P\nSTOPSIGNAL SIGINT\nMAINTAINER me\n")
	wantLabels := map[string]string{"a": "1", "b": "3", "org.opencontainers.image.authors": "me"}
	if diff := cmp.Diff(wantLabels, r.Image.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	var ports []string
	for _, p := range r.Image.Expose {
		ports = append(ports, p.String())
	}
	sort.Strings(ports)
	if want := []string{"7000/udp", "7001/udp", "80/tcp", "9/tcp"}; !cmp.Equal(ports, want) {
		t.Errorf("expose = %v, want %v", ports, want)
	}
	if r.Image.StopSignal != "SIGINT" || !cmp.Equal(r.Image.Volumes, []string{"/v"}) {
		t.Errorf("stop-signal %q volumes %v", r.Image.StopSignal, r.Image.Volumes)
	}
	if len(ws) != 5 {
		t.Errorf("warnings = %q, want stage a's LABEL, EXPOSE and VOLUME (--target a), the ENV in EXPOSE and MAINTAINER", ws)
	}
}

// TestTargetConfig checks the warnings about the image config of a
// stage docker's --target can build: strata's image: section is the
// last stage's config, whatever stage --target builds.
func TestTargetConfig(t *testing.T) {
	for _, tc := range []struct {
		name, df string
		warnings []string
	}{
		{"stage off the last's chain", "FROM busybox AS one\nRUN true\nFROM one AS three\nENTRYPOINT [\"/bin/echo\", \"ep3\"]\nFROM busybox\nCMD [\"echo\"]\n",
			[]string{`Dockerfile:4: ENTRYPOINT in stage "three" is dropped: strata has no image config per stage; its image: section is the last stage's, which a --target three image gets too`}},
		{"stage the last is built on, config after it", "FROM busybox AS base\nLABEL a=1\nFROM base AS mid\nEXPOSE 80\nFROM mid\n",
			[]string{
				`Dockerfile:2: LABEL in stage "base" reaches image: through the last stage, built on it; but strata has no image config per stage: a --target base image also gets what the stages after it set (line 4)`,
			}},
		{"stage the last is built on, nothing after", "FROM busybox AS base\nLABEL a=1\nFROM base AS mid\nRUN true\nFROM mid\n", nil},
		{"unnamed stage", "FROM busybox\nLABEL a=1\nFROM busybox\nCMD [\"x\"]\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, text, ws := conv(t, tc.df)
			if diff := cmp.Diff(tc.warnings, ws); diff != "" {
				t.Errorf("warnings (-want +got):\n%s\n%s", diff, text)
			}
		})
	}
}

// TestStages checks stage names and references: by name, by index, a
// name strata does not allow, an image in COPY --from.
func TestStages(t *testing.T) {
	r, text, ws := conv(t, `FROM busybox AS build.v1
RUN true
FROM alpine
COPY --from=0 /a /a
COPY --from=build.v1 /b /b
COPY --from=nginx /etc/nginx /etc/nginx
FROM 1
`)
	var names []string
	for _, s := range r.Stages {
		names = append(names, s.Name)
	}
	if want := []string{"build-v1", "stage-1", ""}; !cmp.Equal(names, want) {
		t.Errorf("stage names = %q, want %q\n%s", names, want, text)
	}
	s := r.Stages[1]
	if got := []string{s.Steps[0].Copy.From.Ref, s.Steps[1].Copy.From.Ref, s.Steps[2].Copy.From.Ref}; !cmp.Equal(got, []string{"build-v1", "build-v1", "nginx:latest"}) {
		t.Errorf("copy froms = %q", got)
	}
	if got := r.Stages[2].From; got.Kind != recipe.KindStage || got.Ref != "stage-1" {
		t.Errorf("FROM 1 = %+v, want stage-1", got)
	}
	if len(ws) != 1 || !strings.Contains(ws[0], `named "build-v1"`) {
		t.Errorf("warnings = %q", ws)
	}
}

// TestHeredocs checks RUN and COPY heredocs against buildkit's handling,
// and that file contents survive YAML with their exact bytes.
func TestHeredocs(t *testing.T) {
	r, text, _ := conv(t, "FROM busybox\nARG N=v\nRUN <<EOF\n  indented first\ntrailing spaces   \n\nEOF\n"+
		"COPY <<EOF /a\n  lead ${N} $N \\$N\n\ttab   \nEOF\n"+
		"COPY <<'EOF' <<EOT /dir/\n${N} '\"\nEOF\nsecond\nEOT\n"+
		"RUN <<EOF\n#!/bin/sh\necho $N\nEOF\n")
	s := lastStage(r)
	if got, want := s.Steps[0].Run.Command, "  indented first\ntrailing spaces   \n\n"; got != want {
		t.Errorf("RUN <<EOF = %q, want %q\n%s", got, want, text)
	}
	files := map[string]string{}
	for _, st := range s.Steps {
		if st.File != nil {
			files[st.File.Path] = st.File.Content
		}
	}
	want := map[string]string{"/a": "  lead v v $N\n\ttab   \n", "/dir/EOF": "${N} '\"\n", "/dir/EOT": "second\n"}
	if diff := cmp.Diff(want, files); diff != "" {
		t.Errorf("files (-docker's bytes +recipe's):\n%s\n%s", diff, text)
	}
	last := s.Steps[len(s.Steps)-1].Run
	if len(last.Mounts) != 1 || last.Mounts[0].Target != "/dev/pipes" || !strings.Contains(last.Command, "exec /dev/pipes/EOF") {
		t.Errorf("a #! heredoc runs as docker runs it, from a file in /dev/pipes: %+v", last)
	}
}

// TestRunMounts checks RUN --mount and --network.
func TestRunMounts(t *testing.T) {
	r, _, ws := conv(t, `FROM busybox
RUN --network=none --mount=type=cache,target=/c,id=x,sharing=locked --mount=type=secret,id=tok --mount=type=tmpfs,target=/t,size=1m true
RUN --mount=type=bind,target=/src make
`)
	s := lastStage(r)
	want := []recipe.Mount{{Type: recipe.MountCache, Target: "/c", ID: "x"}, {Type: recipe.MountSecret, Target: "/run/secrets/tok", ID: "tok"}, {Type: recipe.MountTmpfs, Target: "/t"}}
	if diff := cmp.Diff(want, s.Steps[0].Run.Mounts, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Pos" }, cmp.Ignore())); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	if s.Steps[0].Run.Network != recipe.NetworkNone {
		t.Errorf("--network=none gave %v", s.Steps[0].Run.Network)
	}
	if len(ws) != 3 {
		t.Errorf("warnings = %q, want sharing, size and the bind mount", ws)
	}
}

// TestShell checks that SHELL becomes the stage's shell, or an exec form
// when it changes between runs.
func TestShell(t *testing.T) {
	r, _, _ := conv(t, "FROM busybox\nSHELL [\"/bin/ash\", \"-e\", \"-c\"]\nRUN a\nSHELL [\"/bin/sh\", \"-c\"]\nRUN b\n")
	s := lastStage(r)
	if !cmp.Equal(s.Shell, []string{"/bin/ash", "-e", "-c"}) || s.Steps[0].Run.Exec {
		t.Errorf("stage shell %q, step 1 %+v", s.Shell, s.Steps[0].Run)
	}
	if got := s.Steps[1].Run.Args; !cmp.Equal(got, []string{"/bin/sh", "-c", "b"}) {
		t.Errorf("step 2 = %q, want the exec form with /bin/sh -c", got)
	}
}

// TestShellOverInherited: a stage built on another starts with its shell,
// in strata as in docker, so a SHELL back to /bin/sh -c in it must be
// written, not taken for the default.
func TestShellOverInherited(t *testing.T) {
	r, text, _ := conv(t, "FROM busybox AS parent\nSHELL [\"/bin/sh\", \"-ec\"]\nRUN a\nFROM parent\nSHELL [\"/bin/sh\", \"-c\"]\nRUN b\n")
	if got := r.Stages[0].Shell; !cmp.Equal(got, []string{"/bin/sh", "-ec"}) {
		t.Errorf("parent's shell = %q, want [/bin/sh -ec]\n%s", got, text)
	}
	s := lastStage(r)
	if !cmp.Equal(s.Shell, []string{"/bin/sh", "-c"}) || s.Steps[0].Run.Exec {
		t.Errorf("child's shell = %q, run %+v; want RUN b run by /bin/sh -c\n%s", s.Shell, s.Steps[0].Run, text)
	}
	// A child that keeps the parent's shell writes none: it inherits it.
	r, text, _ = conv(t, "FROM busybox AS parent\nSHELL [\"/bin/sh\", \"-ec\"]\nRUN a\nFROM parent\nRUN b\n")
	if s := lastStage(r); !cmp.Equal(s.Shell, []string{"/bin/sh", "-ec"}) || s.Steps[0].Run.Exec || strings.Count(text, "shell:") != 1 {
		t.Errorf("child's shell = %q, run %+v; want RUN b run by the inherited /bin/sh -ec\n%s", s.Shell, s.Steps[0].Run, text)
	}
}

// TestUnsupported checks that what has no equivalent is reported at its
// line and left as a comment, and that COPY and ADD of local files copy.
func TestUnsupported(t *testing.T) {
	r, text, ws := conv(t, "FROM busybox\nWORKDIR /app\nHEALTHCHECK CMD true\nADD a.tar.gz /x/\nADD --chown=1:1 b.txt .\nONBUILD RUN x\n")
	for _, want := range []string{"# HEALTHCHECK CMD true", "# ADD a.tar.gz /x/", "# ONBUILD RUN x"} {
		if !strings.Contains(text, want) {
			t.Errorf("recipe lacks the comment %q:\n%s", want, text)
		}
	}
	wantW := []string{
		"Dockerfile:3: HEALTHCHECK has no strata equivalent; left as a comment",
		"Dockerfile:4: ADD of a local archive (docker unpacks it) has no strata equivalent (copy it and unpack it in a run step); left as a comment",
		"Dockerfile:5: ADD b.txt: docker unpacks a local file that is a tar archive (plain or compressed) whatever its name, which the conversion cannot see; copied as it is (write COPY in the Dockerfile if it is not an archive, or unpack it in a run step)",
		"Dockerfile:6: ONBUILD has no strata equivalent; left as a comment",
	}
	if diff := cmp.Diff(wantW, ws); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	steps := lastStage(r).Steps
	c := steps[len(steps)-1].Copy
	if c.To != "/app/" || c.Owner == nil || c.Owner.String() != "1:1" {
		t.Errorf("ADD b.txt . = %+v, want a copy to /app/ owned 1:1", c)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		df   string
		line int
	}{
		{"FROM busybox\nBOGUS x\n", 2},
		{"ARG X=1\n", 0},
		{"FROM busybox\nCOPY --nope a b\n", 2},
	} {
		_, err := Convert("Dockerfile", []byte(tc.df))
		var pe *ParseError
		if !errors.As(err, &pe) || pe.Line != tc.line {
			t.Errorf("Convert(%q) = %v, want a ParseError at line %d", tc.df, err, tc.line)
		}
	}
}

// TestArgScope checks docker's per-stage ARGs against strata's one set of
// args: a stage built on another has its ARGs, and a default one stage
// gives is not another stage's, where docker gives "" to an ARG declared
// without one.
func TestArgScope(t *testing.T) {
	for _, tc := range []struct {
		name, df string
		// env and copy are the last stage's first run env and copy to.
		env      []recipe.EnvVar
		copyTo   string
		warnings []string
	}{
		{"inherited by FROM stage", "FROM busybox AS a\nARG V=1\nFROM a\nRUN echo $V\nCOPY x /${V}/\n",
			[]recipe.EnvVar{{Name: "V", Value: "1"}}, "/1/", nil},
		{"redeclared in the child keeps the parent's", "FROM busybox AS a\nARG V=1\nFROM a\nARG V\nRUN echo $V\nCOPY x /${V}/\n",
			[]recipe.EnvVar{{Name: "V", Value: "1"}}, "/1/", nil},
		{"no leak to a later stage", "FROM busybox AS a\nARG V=1\nRUN true\nFROM busybox\nARG V\nRUN echo $V\nCOPY x /d${V}/\n",
			[]recipe.EnvVar{{Name: "V", Value: ""}}, "/d/",
			[]string{`Dockerfile:5: ARG V has no default in this stage: docker gives it "" here unless a --build-arg sets it, but strata's args are one per recipe and another stage gives V a default; written as "" in this stage (a --build-arg V does not reach it)`}},
		{"global default applies", "ARG V=g\nFROM busybox AS a\nARG V\nFROM busybox\nARG V\nRUN echo $V\nCOPY x /${V}/\n",
			[]recipe.EnvVar{{Name: "V", Value: "g"}}, "/g/", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, text, ws := conv(t, tc.df)
			s := lastStage(r)
			var env []recipe.EnvVar
			to := ""
			for _, st := range s.Steps {
				if st.Run != nil && env == nil {
					env = st.Run.Env
				}
				if st.Copy != nil {
					to = st.Copy.To
				}
			}
			if !cmp.Equal(env, tc.env) || to != tc.copyTo {
				t.Errorf("run env %v, copy to %q; want %v, %q\n%s", env, to, tc.env, tc.copyTo, text)
			}
			if diff := cmp.Diff(tc.warnings, ws); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
	// A stage before the one giving the default does not get it either.
	r, text, _ := conv(t, "FROM busybox AS a\nARG V\nRUN echo $V\nFROM busybox\nARG V=1\nRUN echo $V\n")
	if got := r.Stages[0].Steps[0].Run.Env; !cmp.Equal(got, []recipe.EnvVar{{Name: "V", Value: ""}}) {
		t.Errorf("first stage's run env = %v, want V empty\n%s", got, text)
	}
	if got := r.Stages[1].Steps[0].Run.Env; !cmp.Equal(got, []recipe.EnvVar{{Name: "V", Value: "1"}}) {
		t.Errorf("second stage's run env = %v, want V=1\n%s", got, text)
	}
}

// TestFromArgNamesStage checks a FROM whose ARG's default names a stage:
// docker builds on the stage, not on an image of that name; a
// --build-arg still chooses another base.
func TestFromArgNamesStage(t *testing.T) {
	df := "ARG BASE=builder\nFROM busybox AS builder\nRUN touch /x\nFROM ${BASE}\nRUN test -f /x\n"
	r, text, ws := conv(t, df)
	if got := lastStage(r).From; got.Kind != recipe.KindStage || got.Ref != "builder" {
		t.Errorf("from = %+v, want the stage builder\n%s", got, text)
	}
	if len(ws) != 0 {
		t.Errorf("warnings: %q", ws)
	}
	r, _, _ = conv(t, df, recipe.WithBuildArgs(map[string]string{"BASE": "alpine:3"}))
	if got := lastStage(r).From; got.Kind == recipe.KindStage || got.Ref != "alpine:3" {
		t.Errorf("with --build-arg BASE=alpine:3, from = %+v, want the image", got)
	}
	r, text, _ = conv(t, "ARG V=1\nFROM busybox AS b1\nFROM b${V}\n")
	if got := lastStage(r).From; got.Kind != recipe.KindStage || got.Ref != "b1" {
		t.Errorf("FROM b${V} = %+v, want the stage b1\n%s", got, text)
	}
}

// TestKeys checks ENV and LABEL names: docker expands their variables,
// strata does not, so convert does; a literal ${ stays as it is (strata
// does not unescape names either).
func TestKeys(t *testing.T) {
	r, text, ws := conv(t, "FROM busybox\nARG N=MYVAR PREFIX=org.acme\nENV ${N}=1 \\${y}=2\nLABEL ${PREFIX}.version=1 \\${x}.v=2\n")
	s := lastStage(r)
	var env []recipe.EnvVar
	for _, st := range s.Steps {
		env = append(env, st.Env...)
	}
	if want := []recipe.EnvVar{{Name: "MYVAR", Value: "1"}, {Name: "${y}", Value: "2"}}; !cmp.Equal(env, want) {
		t.Errorf("env = %q, want %q\n%s", env, want, text)
	}
	if want := map[string]string{"org.acme.version": "1", "${x}.v": "2"}; !cmp.Equal(r.Image.Labels, want) {
		t.Errorf("labels = %q, want %q\n%s", r.Image.Labels, want, text)
	}
	want := []string{
		`Dockerfile:3: the ENV name ${N} has variables, which strata does not expand in names; written as its value with the Dockerfile's defaults, "MYVAR" (a --build-arg does not change it)`,
		`Dockerfile:4: the LABEL name ${PREFIX}.version has variables, which strata does not expand in names; written as its value with the Dockerfile's defaults, "org.acme.version" (a --build-arg does not change it)`,
	}
	if diff := cmp.Diff(want, ws); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// TestArgLiteralDollar checks an ARG default with a literal ${: docker's
// value keeps it, and strata, which does not expand args' defaults, must
// be given it unescaped.
func TestArgLiteralDollar(t *testing.T) {
	r, text, ws := conv(t, "FROM busybox\nARG TPL='${name}-x'\nENV T=$TPL\nRUN true\n")
	want := "${name}-x"
	if len(r.Args) != 1 || r.Args[0].Value != want {
		t.Errorf("args = %+v, want TPL=%q\n%s", r.Args, want, text)
	}
	s := lastStage(r)
	if got := s.Steps[0].Env; !cmp.Equal(got, []recipe.EnvVar{{Name: "T", Value: want}}) {
		t.Errorf("env = %q, want T=%q\n%s", got, want, text)
	}
	if got := s.Steps[1].Run.Env; !cmp.Equal(got, []recipe.EnvVar{{Name: "TPL", Value: want}}) {
		t.Errorf("run env = %q, want TPL=%q", got, want)
	}
	if len(ws) != 0 {
		t.Errorf("warnings: %q", ws)
	}
}

// TestRefusedByStrata checks what strata would refuse at build though
// docker takes it: written as docker means it, or reported at its line.
func TestRefusedByStrata(t *testing.T) {
	t.Run("undefined variable", func(t *testing.T) {
		r, text, ws := conv(t, "FROM busybox\nENV A=$UNDEF/x B=$PATH\nRUN true\n")
		if got := lastStage(r).Steps[0].Env[0].Value; got != "${UNDEF}/x" {
			t.Errorf("A = %q, want ${UNDEF}/x\n%s", got, text)
		}
		want := []string{`Dockerfile:2: $UNDEF is not set in the Dockerfile: strata takes it from the base image's env and stops the build if the base image does not set it, where docker gives "" (declare it with ARG UNDEF= if the base image may not set it)`}
		if diff := cmp.Diff(want, ws); diff != "" {
			t.Errorf("warnings (-want +got):\n%s", diff)
		}
	})
	t.Run("user without group", func(t *testing.T) {
		r, text, ws := conv(t, "FROM busybox\nUSER 1000:\nCOPY --chown=1000: a /a\n")
		s := lastStage(r)
		if got := s.Steps[0].User; got != "1000" {
			t.Errorf("USER 1000: = %q, want 1000 (docker's group default)\n%s", got, text)
		}
		if got := s.Steps[1].Copy.Owner; got == nil || got.String() != "1000" {
			t.Errorf("COPY --chown=1000: = %v, want 1000\n%s", got, text)
		}
		if len(ws) != 0 {
			t.Errorf("warnings: %q", ws)
		}
	})
	t.Run("relative volume", func(t *testing.T) {
		r, _, ws := conv(t, "FROM busybox\nVOLUME data /abs\n")
		if !cmp.Equal(r.Image.Volumes, []string{"/abs"}) {
			t.Errorf("volumes = %q, want /abs alone", r.Image.Volumes)
		}
		want := []string{`Dockerfile:2: VOLUME data is not an absolute path, which strata's volumes refuse (docker writes it as it is into the image config); left out`}
		if diff := cmp.Diff(want, ws); diff != "" {
			t.Errorf("warnings (-want +got):\n%s", diff)
		}
	})
	// A stage name used twice: docker's FROM takes the latest so far,
	// COPY --from and --target the last.
	t.Run("stage name used twice", func(t *testing.T) {
		r, text, ws := conv(t, "FROM busybox AS a\nRUN echo 1\nFROM a AS b\nFROM busybox AS a\nRUN echo 2\nFROM a\nCOPY --from=a /x /x\n")
		var names, froms []string
		for _, st := range r.Stages {
			names, froms = append(names, st.Name), append(froms, st.From.Ref)
		}
		if want := []string{"a-1", "b", "a", ""}; !cmp.Equal(names, want) {
			t.Errorf("stage names = %q, want %q\n%s", names, want, text)
		}
		if want := []string{"busybox:latest", "a-1", "busybox:latest", "a"}; !cmp.Equal(froms, want) {
			t.Errorf("froms = %q, want %q\n%s", froms, want, text)
		}
		if got := lastStage(r).Steps[0].Copy.From.Ref; got != "a" {
			t.Errorf("COPY --from=a copies from %q, want a (the last)", got)
		}
		want := []string{`Dockerfile:1: stage name "a" is also the stage's of line 4, which docker's COPY --from and --target take; strata's stage names are unique: this one is named "a-1" (a FROM a before line 4 builds on it, as in docker)`}
		if diff := cmp.Diff(want, ws); diff != "" {
			t.Errorf("warnings (-want +got):\n%s", diff)
		}
		_, _, ws = conv(t, "FROM busybox AS a\nFROM busybox\nCOPY --from=a /x /x\nFROM busybox AS a\n")
		if len(ws) != 2 || !strings.HasPrefix(ws[1], "Dockerfile:3: docker refuses COPY --from=a here: it takes the last stage of that name, at line 4") {
			t.Errorf("warnings = %q, want the rename and docker's refusal of the COPY", ws)
		}
	})
}

// TestAddMayUnpack checks that an ADD of local files that may be
// archives, which docker tells by their content, says they are copied,
// not unpacked; a directory, --unpack=false or a heredoc is not one.
func TestAddMayUnpack(t *testing.T) {
	r, text, ws := conv(t, "FROM busybox\nADD a.txt b/ /x/\nADD --unpack=false c.bin /y\nADD src/ . /z/\nADD <<EOF /h\nhi\nEOF\n")
	want := []string{"Dockerfile:2: ADD a.txt: docker unpacks a local file that is a tar archive (plain or compressed) whatever its name, which the conversion cannot see; copied as it is (write COPY in the Dockerfile if it is not an archive, or unpack it in a run step)"}
	if diff := cmp.Diff(want, ws); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	if got := len(lastStage(r).Steps); got != 4 {
		t.Errorf("%d steps, want 4 copies and files\n%s", got, text)
	}
}

// TestStageDefaultOverGlobalArg: a global ARG without a default leaves a
// stage's default to apply, in docker as in the recipe; nothing is lost.
func TestStageDefaultOverGlobalArg(t *testing.T) {
	r, text, ws := conv(t, "ARG V\nFROM busybox\nARG V=1\nRUN echo $V\n")
	if got := lastStage(r).Steps[0].Run.Env; !cmp.Equal(got, []recipe.EnvVar{{Name: "V", Value: "1"}}) {
		t.Errorf("run env = %v, want V=1\n%s", got, text)
	}
	if len(ws) != 0 {
		t.Errorf("warnings: %q", ws)
	}
}
