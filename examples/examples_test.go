package examples_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/stratabuild/strata/recipe"
)

// TestExamplesLoad loads every example recipe: each must be valid and
// give no warning.
func TestExamplesLoad(t *testing.T) {
	files, err := filepath.Glob("*/strata.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("found %d examples (%v), want at least hello, debian and multistage", len(files), files)
	}
	for _, f := range files {
		t.Run(filepath.Dir(f), func(t *testing.T) {
			r, err := recipe.Load(f)
			if err != nil {
				t.Fatalf("Load(%q) errors:\n%v", f, err)
			}
			for _, w := range r.Warnings {
				t.Errorf("Load(%q) warning: %s", f, w)
			}
			if _, err := r.Needed(""); err != nil {
				t.Errorf("Needed(\"\"): %v", err)
			}
		})
	}
}

// TestHello checks the shape the demo script depends on.
func TestHello(t *testing.T) {
	r, err := recipe.Load("hello/strata.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := r.Stages[0]
	if got, want := s.From.Ref, "127.0.0.1:5000/library/busybox:latest"; got != want {
		t.Errorf("from = %q, want %q", got, want)
	}
	if got, want := r.Image.Cmd, []string{"/bin/cat", "/hello.txt"}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("image cmd = %q, want %q", got, want)
	}
	kinds := map[recipe.StepKind]bool{}
	for _, st := range s.Steps {
		kinds[st.Kind] = true
	}
	for _, k := range []recipe.StepKind{recipe.RunStep, recipe.CopyStep, recipe.EnvStep} {
		if !kinds[k] {
			t.Errorf("hello has no %s step", k)
		}
	}
}

// ciExample is one CI example of ci/: the shell lines its job runs and the
// environment the job sets for them.
type ciExample struct {
	file   string
	doc    map[string]any
	script []string // logical lines: continuations joined, spaces collapsed
	env    map[string]string
}

// ciExamples loads the three CI examples; each must parse as YAML.
func ciExamples(t *testing.T) []ciExample {
	t.Helper()
	var out []ciExample
	for _, f := range []string{"ci/github-actions.yml", "ci/gitlab-ci.yml", "ci/kubernetes-job.yaml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ex := ciExample{file: f, env: map[string]string{}}
		if err := yaml.Unmarshal(data, &ex.doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var scripts []string
		switch f {
		case "ci/github-actions.yml":
			scripts = ex.github(t)
		case "ci/gitlab-ci.yml":
			scripts = ex.gitlab(t)
		default:
			scripts = ex.kubernetes(t)
		}
		for _, s := range scripts {
			ex.script = append(ex.script, shellLines(s)...)
		}
		if len(ex.script) == 0 {
			t.Fatalf("%s runs nothing", f)
		}
		out = append(out, ex)
	}
	return out
}

// github reads the workflow's one job: it must run in a privileged
// container; its env and steps' run scripts.
func (ex *ciExample) github(t *testing.T) []string {
	jobs := asMap(t, ex.doc["jobs"])
	if len(jobs) != 1 {
		t.Fatalf("%s: %d jobs, want 1", ex.file, len(jobs))
	}
	var scripts []string
	for _, j := range jobs {
		job := asMap(t, j)
		if opts, _ := asMap(t, job["container"])["options"].(string); !strings.Contains(opts, "--privileged") {
			t.Errorf("%s: the job's container options %q lack --privileged", ex.file, opts)
		}
		for k, v := range asMap(t, job["env"]) {
			ex.env[k] = fmt.Sprint(v)
		}
		for _, s := range job["steps"].([]any) {
			if run, ok := asMap(t, s)["run"].(string); ok {
				scripts = append(scripts, run)
			}
		}
	}
	return scripts
}

// gitlab reads the pipeline's one job: its image's entrypoint must be
// emptied (the job runs a shell script), its variables and script.
func (ex *ciExample) gitlab(t *testing.T) []string {
	var scripts []string
	jobs := 0
	for _, j := range ex.doc {
		job, ok := j.(map[string]any)
		if !ok || job["script"] == nil {
			continue
		}
		jobs++
		if ep, _ := asMap(t, job["image"])["entrypoint"].([]any); len(ep) != 1 || ep[0] != "" {
			t.Errorf("%s: image entrypoint %v, want [\"\"]", ex.file, ep)
		}
		for k, v := range asMap(t, job["variables"]) {
			ex.env[k] = fmt.Sprint(v)
		}
		for _, s := range job["script"].([]any) {
			scripts = append(scripts, s.(string))
		}
	}
	if jobs != 1 {
		t.Fatalf("%s: %d jobs, want 1", ex.file, jobs)
	}
	return scripts
}

// kubernetes reads the Job's strata container: privileged, its state an
// emptyDir, its env and the script it runs with sh.
func (ex *ciExample) kubernetes(t *testing.T) []string {
	if ex.doc["kind"] != "Job" || ex.doc["apiVersion"] != "batch/v1" {
		t.Fatalf("%s: kind %v %v, want a batch/v1 Job", ex.file, ex.doc["apiVersion"], ex.doc["kind"])
	}
	pod := asMap(t, asMap(t, asMap(t, ex.doc["spec"])["template"])["spec"])
	emptyDirs := map[string]bool{}
	for _, v := range pod["volumes"].([]any) {
		vol := asMap(t, v)
		if _, ok := vol["emptyDir"]; ok {
			emptyDirs[vol["name"].(string)] = true
		}
	}
	var scripts []string
	for _, c := range pod["containers"].([]any) {
		ctr := asMap(t, c)
		if ctr["name"] != "strata" {
			continue
		}
		if priv, _ := asMap(t, ctr["securityContext"])["privileged"].(bool); !priv {
			t.Errorf("%s: the strata container is not privileged", ex.file)
		}
		state := false
		for _, m := range ctr["volumeMounts"].([]any) {
			mount := asMap(t, m)
			state = state || mount["mountPath"] == "/var/lib/strata" && emptyDirs[mount["name"].(string)]
		}
		if !state {
			t.Errorf("%s: /var/lib/strata is not an emptyDir", ex.file)
		}
		if cmd := fmt.Sprint(ctr["command"]); cmd != "[/bin/sh -ec]" {
			t.Errorf("%s: command %s, want [/bin/sh -ec]", ex.file, cmd)
		}
		for _, e := range ctr["env"].([]any) {
			ev := asMap(t, e)
			ex.env[ev["name"].(string)] = fmt.Sprint(ev["value"])
		}
		for _, a := range ctr["args"].([]any) {
			scripts = append(scripts, a.(string))
		}
	}
	return scripts
}

func asMap(t *testing.T, v any) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok && v != nil {
		t.Fatalf("%v is not a mapping", v)
	}
	return m
}

// shellLines splits a script into logical lines: backslash-newline
// continuations joined, runs of blanks made one space, empty lines dropped.
func shellLines(script string) []string {
	var out []string
	for _, line := range strings.Split(strings.ReplaceAll(script, "\\\n", " "), "\n") {
		if line = strings.Join(strings.Fields(line), " "); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// readmeCI is the shell README.md's "strata in CI" section documents: the
// lines of its sh code blocks.
func readmeCI(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## strata in CI\n")
	if !ok {
		t.Fatal(`README.md has no section "## strata in CI"`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var lines []string
	for {
		_, rest, ok := strings.Cut(section, "```sh\n")
		if !ok {
			return lines
		}
		block, after, _ := strings.Cut(rest, "```")
		lines = append(lines, shellLines(block)...)
		section = after
	}
}

// platformPlumbing marks the lines that hand the digest to the platform
// (a step output, a dotenv report, the termination message): each
// platform's own, so README cannot document one line for all.
var platformPlumbing = regexp.MustCompile(`GITHUB_OUTPUT|build\.env|/dev/termination-log`)

var shellVar = regexp.MustCompile(`\$\{?([A-Z_][A-Z0-9_]*)`)

// TestCIExamples checks the CI examples of ci/: each parses and asks for
// the privileges strata needs; each runs the commands README.md documents
// (and README documents their flags' real names); the variables the
// commands use are set by the job; and the recipe they build, with the
// build args they give it, passes strata validate.
func TestCIExamples(t *testing.T) {
	readme := readmeCI(t)
	bin := strataBinary(t)
	for _, ex := range ciExamples(t) {
		t.Run(filepath.Base(ex.file), func(t *testing.T) {
			text, err := os.ReadFile(ex.file)
			if err != nil {
				t.Fatal(err)
			}
			for _, note := range []string{"Privileges:", "privileged", "/var/lib/strata", "/etc/subuid"} {
				if !strings.Contains(string(text), note) {
					t.Errorf("%s does not say %q: every example states the privileges it needs and why", ex.file, note)
				}
			}
			var validate, build bool
			for _, line := range ex.script {
				if !platformPlumbing.MatchString(line) && !slices.Contains(readme, line) {
					t.Errorf("%s runs a line README.md's \"strata in CI\" does not show:\n%s", ex.file, line)
				}
				for _, m := range shellVar.FindAllStringSubmatch(line, -1) {
					if _, ok := ex.env[m[1]]; !ok && m[1] != "GITHUB_OUTPUT" {
						t.Errorf("%s uses $%s, which the job does not set: %s", ex.file, m[1], line)
					}
				}
				validate = validate || strings.HasPrefix(line, "strata validate ")
				build = build || strings.Contains(line, "$(strata build ")
			}
			if !validate || !build {
				t.Errorf("%s: strata validate run: %v, strata build run: %v; want both", ex.file, validate, build)
			}
			ctx := filepath.Join("..", ex.env["CONTEXT"])
			if ex.env["CONTEXT"] == "" {
				t.Fatalf("%s sets no CONTEXT", ex.file)
			}
			out, err := exec.Command(bin, "validate", "--offline", "--build-arg", "BASE="+ex.env["BASE"], ctx).CombinedOutput()
			if err != nil {
				t.Errorf("strata validate %s (the recipe %s builds): %v\n%s", ctx, ex.file, err, out)
			}
		})
	}
	checkFlags(t, bin, readme)
}

// strataCommand matches a line running strata: at its start, or in $(…).
var strataCommand = regexp.MustCompile(`(?:^|\$\()strata ([a-z].*)`)

// checkFlags checks that every flag the README's strata commands use is
// one strata's help lists.
func checkFlags(t *testing.T, bin string, lines []string) {
	t.Helper()
	for _, line := range lines {
		m := strataCommand.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		words := strings.Fields(m[1])
		help, err := exec.Command(bin, words[0], "--help").CombinedOutput()
		if err != nil {
			t.Fatalf("strata %s --help: %v\n%s", words[0], err, help)
		}
		for _, w := range words[1:] {
			flag, _, _ := strings.Cut(w, "=")
			if strings.HasPrefix(flag, "-") && !regexp.MustCompile(`(^|[ ,])`+regexp.QuoteMeta(flag)+`\b`).Match(help) {
				t.Errorf("README.md runs strata %s %s: a flag `strata %s --help` does not list", words[0], flag, words[0])
			}
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if strataBin.path != "" {
		os.RemoveAll(filepath.Dir(strataBin.path))
	}
	os.Exit(code)
}

var strataBin struct {
	once sync.Once
	path string
	err  error
}

// strataBinary builds the strata command once per test run.
func strataBinary(t *testing.T) string {
	t.Helper()
	strataBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "strata-examples-bin-")
		if err != nil {
			strataBin.err = err
			return
		}
		strataBin.path = filepath.Join(dir, "strata")
		out, err := exec.Command("go", "build", "-o", strataBin.path, "../cmd/strata").CombinedOutput()
		if err != nil {
			strataBin.err = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if strataBin.err != nil {
		t.Fatal(strataBin.err)
	}
	return strataBin.path
}
