package recipe

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustParse(t *testing.T, src string, opts ...Option) *Recipe {
	t.Helper()
	r, err := Parse("strata.yaml", []byte(src), opts...)
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return r
}

func parseErrs(t *testing.T, src string, opts ...Option) []string {
	t.Helper()
	_, err := Parse("strata.yaml", []byte(src), opts...)
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Parse error = %v, want an ErrorList", err)
	}
	var out []string
	for _, e := range list {
		out = append(out, e.Error())
	}
	return out
}

func TestSingleImageForm(t *testing.T) {
	r := mustParse(t, `
args: {VERSION: "1.4.2", BASE: "127.0.0.1:5000/library/debian:bookworm"}
from: ${BASE}
platform: linux/amd64
env: {LANG: C.UTF-8, V: "v${VERSION}"}
workdir: /srv
user: "1000:1000"
shell: [/bin/bash, -c]
steps:
  - run: echo ${V} $HOME $${LITERAL} > out
    name: write
    network: host
    env: {X: "${LANG}"}
    mounts:
      - {type: cache, target: /var/cache/apt, id: apt}
      - {type: cache, target: cache}
      - {type: secret, id: npmrc, target: /root/.npmrc}
      - {type: tmpfs, target: /tmp}
  - run: [/bin/mkdir, -p, "/opt/${VERSION}"]
  - copy: [src/, config.toml, "*.txt"]
    to: app/
    owner: "1000:app"
    mode: "0644"
  - workdir: sub
  - copy: x
    to: y
  - user: app
image:
  entrypoint: [/opt/app/bin/server]
  cmd: [--port, "8080"]
  labels: {org.opencontainers.image.version: "${VERSION}"}
  expose: ["8080", 53/udp]
  volumes: [/data/]
  stop-signal: term
`, WithBuildArgs(map[string]string{"VERSION": "2.0"}))
	if len(r.Stages) != 1 {
		t.Fatalf("%d stages, want 1", len(r.Stages))
	}
	s := r.Stages[0]
	mode := os.FileMode(0o644)
	want := &Stage{
		Name: "", Index: 0, Pos: Pos{"strata.yaml", 2, 1},
		From:     Base{Kind: KindRegistry, Ref: "127.0.0.1:5000/library/debian:bookworm", Tag: "bookworm", Stage: -1, Pos: Pos{"strata.yaml", 3, 7}},
		Platform: Platform{OS: "linux", Arch: "amd64"}, PlatformPos: Pos{"strata.yaml", 4, 11},
		Env:     []EnvVar{{"LANG", "C.UTF-8"}, {"V", "v2.0"}},
		Workdir: "/srv", User: "1000:1000", Shell: []string{"/bin/bash", "-c"},
		DependsOn: []int{},
		Steps: []*Step{
			{Index: 0, Pos: Pos{"strata.yaml", 10, 5}, Name: "write", Kind: RunStep, Run: &Run{
				Command: "echo v2.0 $HOME ${LITERAL} > out", Shell: []string{"/bin/bash", "-c"}, Network: NetworkHost,
				Env: []EnvVar{{"X", "C.UTF-8"}},
				Mounts: []Mount{
					{Type: MountCache, Target: "/var/cache/apt", ID: "apt", Pos: Pos{"strata.yaml", 15, 9}},
					{Type: MountCache, Target: "/srv/cache", ID: "/srv/cache", DefaultID: true, Pos: Pos{"strata.yaml", 16, 9}},
					{Type: MountSecret, Target: "/root/.npmrc", ID: "npmrc", Pos: Pos{"strata.yaml", 17, 9}},
					{Type: MountTmpfs, Target: "/tmp", Pos: Pos{"strata.yaml", 18, 9}},
				}}},
			{Index: 1, Pos: Pos{"strata.yaml", 19, 5}, Kind: RunStep, Run: &Run{Exec: true, Args: []string{"/bin/mkdir", "-p", "/opt/2.0"}, Network: NetworkNone}},
			{Index: 2, Pos: Pos{"strata.yaml", 20, 5}, Kind: CopyStep, Copy: &Copy{
				Sources: []string{"src/", "config.toml", "*.txt"}, To: "/srv/app/",
				Owner: &Owner{User: "1000", UID: 1000, Group: "app", GID: -1}, Mode: &mode}},
			{Index: 3, Pos: Pos{"strata.yaml", 24, 5}, Kind: WorkdirStep, Workdir: "/srv/sub"},
			{Index: 4, Pos: Pos{"strata.yaml", 25, 5}, Kind: CopyStep, Copy: &Copy{Sources: []string{"x"}, To: "/srv/sub/y"}},
			{Index: 5, Pos: Pos{"strata.yaml", 27, 5}, Kind: UserStep, User: "app"},
		},
	}
	if diff := cmp.Diff(want, s, cmp.AllowUnexported(Stage{}), cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".src" }, cmp.Ignore())); diff != "" {
		t.Errorf("stage mismatch (-want +got):\n%s", diff)
	}
	wantImg := Image{
		Entrypoint: []string{"/opt/app/bin/server"}, Cmd: []string{"--port", "8080"},
		Labels: map[string]string{"org.opencontainers.image.version": "2.0"},
		Expose: []Port{{8080, "tcp"}, {53, "udp"}}, Volumes: []string{"/data"}, StopSignal: "SIGTERM",
		Pos: Pos{"strata.yaml", 29, 3},
	}
	if diff := cmp.Diff(wantImg, r.Image); diff != "" {
		t.Errorf("image mismatch (-want +got):\n%s", diff)
	}
	wantArgs := []Arg{
		{Name: "VERSION", Default: "1.4.2", HasDefault: true, Value: "2.0", Set: true, Pos: Pos{"strata.yaml", 2, 8}},
		{Name: "BASE", Default: "127.0.0.1:5000/library/debian:bookworm", HasDefault: true, Value: "127.0.0.1:5000/library/debian:bookworm", Set: true, Pos: Pos{"strata.yaml", 2, 26}},
	}
	if diff := cmp.Diff(wantArgs, r.Args); diff != "" {
		t.Errorf("args mismatch (-want +got):\n%s", diff)
	}
	if got, want := s.Steps[0].Run.Argv(nil), []string{"/bin/bash", "-c", "echo v2.0 $HOME ${LITERAL} > out"}; !cmp.Equal(got, want) {
		t.Errorf("Argv() = %q, want %q", got, want)
	}
}

func TestUnusedBuildArgWarns(t *testing.T) {
	r := mustParse(t, "from: scratch\nsteps: []\n", WithBuildArgs(map[string]string{"NOPE": "1"}))
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0].Msg, "build arg NOPE is not declared") {
		t.Errorf("Warnings = %v, want one about NOPE", r.Warnings)
	}
}

func TestUndefinedIsErrorAtUse(t *testing.T) {
	got := parseErrs(t, "from: scratch\nsteps:\n  - run: \"echo ${A} ${B}\"\n", WithBuildArgs(nil))
	want := []string{
		"strata.yaml:3:16: step 1: undefined variable ${A}; define it in args or env, or write $${A} for a literal ${A}",
		"strata.yaml:3:21: step 1: undefined variable ${B}; define it in args or env, or write $${B} for a literal ${B}",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors mismatch (-want +got):\n%s", diff)
	}
}

func TestExpandBaseEnv(t *testing.T) {
	r := mustParse(t, `
from: 127.0.0.1:5000/library/busybox:latest
env: {PATH: "/opt/app/bin:${PATH}"}
steps:
  - run: echo ${HOME}
  - workdir: ${HOME}/src
  - copy: a
    to: b
`)
	s := r.Stages[0]
	var names []string
	for _, v := range s.Unresolved {
		names = append(names, v.Name)
	}
	if diff := cmp.Diff([]string{"PATH", "HOME", "HOME"}, names); diff != "" {
		t.Errorf("Unresolved mismatch (-want +got):\n%s", diff)
	}
	x, err := s.Expand([]string{"PATH=/usr/bin:/bin", "HOME=/root"})
	if err != nil {
		t.Fatal(err)
	}
	if got := x.Env; !cmp.Equal(got, []EnvVar{{"PATH", "/opt/app/bin:/usr/bin:/bin"}}) {
		t.Errorf("Expand env = %v", got)
	}
	if got := x.Steps[0].Run.Command; got != "echo /root" {
		t.Errorf("Expand run = %q, want echo /root", got)
	}
	if got := x.Steps[2].Copy.To; got != "/root/src/b" {
		t.Errorf("Expand copy to = %q, want /root/src/b (relative to the expanded workdir)", got)
	}
	if len(x.Unresolved) != 0 {
		t.Errorf("Expand left Unresolved = %v", x.Unresolved)
	}
	_, err = s.Expand([]string{"PATH=/bin"})
	var list ErrorList
	if !errors.As(err, &list) || len(list) != 2 || list[0].Pos.Line != 5 || list[1].Pos.Line != 6 {
		t.Errorf("Expand without HOME = %v, want errors at lines 5 and 6", err)
	}
}

func TestMultiStage(t *testing.T) {
	r := mustParse(t, `
stages:
  - name: app
    from: build
    steps:
      - copy: /out/app
        from: build
        to: /app
      - copy: /etc/ssl/certs/
        from: certs
        to: /etc/ssl/certs/
  - name: certs
    from: 127.0.0.1:5000/library/debian:bookworm
  - name: build
    from: 127.0.0.1:5000/library/golang:1.26
    steps:
      - copy: .
        to: /src
  - name: tool
    from: scratch
`)
	names := func(ss []*Stage) []string {
		var out []string
		for _, s := range ss {
			out = append(out, s.Name)
		}
		return out
	}
	tests := []struct {
		target string
		want   []string
	}{
		{"", []string{"tool"}},
		{"app", []string{"certs", "build", "app"}},
		{"build", []string{"build"}},
	}
	for _, tt := range tests {
		got, err := r.Needed(tt.target)
		if err != nil {
			t.Errorf("Needed(%q): %v", tt.target, err)
			continue
		}
		if diff := cmp.Diff(tt.want, names(got)); diff != "" {
			t.Errorf("Needed(%q) mismatch (-want +got):\n%s", tt.target, diff)
		}
	}
	if _, err := r.Needed("ap"); err == nil || !strings.Contains(err.Error(), `did you mean "app"`) {
		t.Errorf("Needed(\"ap\") = %v, want an unknown stage error suggesting app", err)
	}
	app := r.Stage("app")
	if app == nil || app.From.Kind != KindStage || app.From.Stage != 2 || !cmp.Equal(app.DependsOn, []int{1, 2}) {
		t.Errorf("Stage(app) = %+v, want from stage 2, depending on 1 and 2", app)
	}
	if r.Stage("nope") != nil {
		t.Error("Stage(nope) != nil")
	}
	if src := r.Stages[2].Steps[0].Copy.Sources; !cmp.Equal(src, []string{"."}) {
		t.Errorf("copy . sources = %q", src)
	}
}

func TestValues(t *testing.T) {
	modes := map[string]os.FileMode{"0644": 0o644, "755": 0o755, "0o600": 0o600, "4755": os.ModeSetuid | 0o755, "1777": os.ModeSticky | 0o777}
	for in, want := range modes {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "8", "0x1ff", "-1", "10000", "rw"} {
		if _, err := ParseMode(in); err == nil {
			t.Errorf("ParseMode(%q) = nil error", in)
		}
	}
	signals := map[string]string{"SIGTERM": "SIGTERM", "term": "SIGTERM", "9": "SIGKILL", "SIGRTMIN+3": "SIGRTMIN+3", "IOT": "SIGABRT", "64": "SIGRTMAX"}
	for in, want := range signals {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "SIGFOO", "SIG"} {
		if got, err := ParseSignal(in); err == nil {
			t.Errorf("ParseSignal(%q) = %q, want an error", in, got)
		}
	}
	platforms := map[string]string{"linux/amd64": "linux/amd64", "linux/x86_64": "linux/amd64", "linux/aarch64": "linux/arm64", "linux/arm64/v8": "linux/arm64", "linux/arm/7": "linux/arm/v7", "linux/armhf": "linux/arm/v7", "linux/arm": "linux/arm/v7", "linux/arm/v6": "linux/arm/v6"}
	for in, want := range platforms {
		if got, err := ParsePlatform(in); err != nil || got.String() != want {
			t.Errorf("ParsePlatform(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	refs := map[string]ImageRef{
		"debian":                                {Path: "library/debian"},
		"debian:bookworm":                       {Path: "library/debian", Tag: "bookworm"},
		"127.0.0.1:5000/library/busybox:latest": {Domain: "127.0.0.1:5000", Path: "library/busybox", Tag: "latest"},
		"localhost/app@sha256:" + strings.Repeat("a", 64): {Domain: "localhost", Path: "app", Digest: "sha256:" + strings.Repeat("a", 64)},
	}
	for in, want := range refs {
		if got, err := ParseImageRef(in); err != nil || got != want {
			t.Errorf("ParseImageRef(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "Debian", "a:b:c", "a@sha256:12", "-a", "a//b"} {
		if _, err := ParseImageRef(in); err == nil {
			t.Errorf("ParseImageRef(%q) = nil error", in)
		}
	}
}

// TestBuildArgOverridesPredefined: --build-arg TARGETARCH=arm64 sets the
// predefined arg, undeclared, with no warning, as buildx lets it.
func TestBuildArgOverridesPredefined(t *testing.T) {
	r := mustParse(t, "from: scratch\nsteps:\n  - file: /arch\n    content: ${TARGETARCH}\n", WithBuildArgs(map[string]string{"TARGETARCH": "arm64"}))
	if len(r.Warnings) != 0 {
		t.Errorf("warnings %v", r.Warnings)
	}
	if got := r.Stages[0].Steps[0].File.Content; got != "arm64" {
		t.Errorf("content %q, want arm64", got)
	}
}

// TestDateIsNotAString: an unquoted date where a string belongs is
// reported as a date, not as "expected a string, got a string".
func TestDateIsNotAString(t *testing.T) {
	got := parseErrs(t, "from: scratch\nsteps:\n  - file: /d\n    content: 2024-01-01\n")
	if len(got) != 1 || !strings.Contains(got[0], "expected a string, got a date (2024-01-01)") {
		t.Errorf("errors %q", got)
	}
}

// TestBareNameWarned: a $NAME without braces where no shell reads the text
// (an env value, a destination, a label) is kept as it is, with a warning
// naming where and what to write, when it is most likely meant expanded:
// the variable being set (PATH extended), or one the recipe defines. In a
// run command (the shell's), in a file's content, after $$, and for a name
// the recipe does not define (docker's literal ENV A=\$HOME, as convert
// writes it) it is not warned of.
func TestBareNameWarned(t *testing.T) {
	r := mustParse(t, `from: scratch
args: {DEST: d, VERSION: "1"}
env: {PATH: "/opt/bin:$PATH", COST: "5$$HOME", PS1: "\\u$ ", A: $HOME}
steps:
  - run: echo $PATH
  - copy: a
    to: /$DEST/
  - file: /s.sh
    content: echo $HOME
image:
  labels: {v: "$VERSION"}
`)
	if got := r.Stages[0].Env[0].Value; got != "/opt/bin:$PATH" {
		t.Errorf("PATH = %q, want the text as it is", got)
	}
	var got []string
	for _, w := range r.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		"strata.yaml:3:23: env: PATH: $PATH is kept as it is: strata expands ${NAME} only (docker expands $PATH here); write ${PATH}",
		"strata.yaml:7:10: to: $DEST is kept as it is: strata expands ${NAME} only (docker expands $DEST here); write ${DEST}",
		"strata.yaml:11:16: labels: v: $VERSION is kept as it is: strata expands ${NAME} only (docker expands $VERSION here); write ${VERSION}",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("warnings (-want +got):\n%s", d)
	}
}
