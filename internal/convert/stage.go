package convert

import (
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/stratabuild/strata/recipe"
	"go.yaml.in/yaml/v3"
)

// defaultShell is docker's and strata's shell for the string form.
var defaultShell = []string{"/bin/sh", "-c"}

// stageOut is one stage of the recipe being written.
type stageOut struct {
	// name is the strata name; "" for an unnamed stage nothing refers to.
	name string
	line int
	// from is the base as strata writes it.
	from     string
	platform string
	// shell is the stage's shell: key; nil keeps baseShell.
	shell []string
	// baseShell is strata's shell for the stage without a shell: key:
	// the shell the stage it is built on ends with (strata's stage
	// inherits it), else the default.
	baseShell []string
	comments  []string
	steps     []*yaml.Node
	// pending are comments for the next step (or the end of the steps).
	pending []string

	// What the Dockerfile has set when its commands are read in order.
	env map[string]string
	// args are the ARGs declared in this stage, in order: docker gives
	// them to RUN as environment variables.
	args []string
	// unset are the args of args declared without a default while
	// another stage gives them one: docker gives them "" here (unless a
	// --build-arg sets them), strata the recipe's default, so they are
	// written as "".
	unset map[string]bool
	// argSet are the args of args whose last ARG in the stage (or the
	// stage it is built on) gave them a value, a default or a global
	// ARG's, with no ENV of the name since: docker sets that value for
	// RUN and the values after it, over an ENV of the name before it (but
	// not in the image config). An ENV of the name removes it.
	argSet map[string]string
	// envLine is the line of the ENV that set each name of env.
	envLine map[string]int
	// envArg are the names of env whose ENV gave them the arg of the
	// name (ENV V=$V after ARG V): strata's ${V} after it gives the
	// arg's value, build arg included, as docker's does.
	envArg map[string]bool
	// wd is the absolute WORKDIR in effect; "" while the base image's is.
	wd string
	// workdirs are the absolute WORKDIRs set so far (here or in the
	// stage this one is built on): docker made each a directory, owned
	// by root as root, which a COPY to its path copies into. A value is
	// true once a step of the recipe made it (a run step's working dir,
	// the mkdir of a WORKDIR under a USER).
	workdirs map[string]bool
	cur      []string // the shell in effect (SHELL)
	shellOK  bool     // shell decided: the first string-form RUN has been seen
	open     bool     // the base chain ends in an image, not scratch
	cfg      imageConfig
	// user is the USER in effect as strata writes it; "" while the
	// Dockerfile sets none (the base image's user).
	user string
	// parent is the index of the stage this one is built on; -1 for an
	// image or scratch.
	parent int
	// cfgCmds are the stage's instructions that set the image config.
	cfgCmds []instructions.Command
}

// stageNames gives every stage its strata name: the docker name, made
// valid for strata if need be, or stage-N for an unnamed stage another
// refers to by index. A name docker gives several stages is the last
// one's (COPY --from and --target take it); the others are renamed.
func (c *converter) stageNames(stages []instructions.Stage) []string {
	names := make([]string, len(stages))
	used := map[string]bool{}
	last := c.lastStage
	for i, s := range stages {
		c.stageLines = append(c.stageLines, lineOf(s.Location))
		if s.Name != "" {
			last[s.Name] = i
			used[validStageName(s.Name)] = true
		}
	}
	for i, s := range stages {
		if s.Name == "" {
			continue
		}
		n := validStageName(s.Name)
		if n != s.Name {
			c.warnf(lineOf(s.Location), "stage name %q is not a strata stage name (letters, digits, _ and -); named %q", s.Name, n)
		}
		if j := last[s.Name]; j != i {
			base := n
			for k := 1; used[n]; k++ {
				n = base + "-" + strconv.Itoa(k)
			}
			c.warnf(lineOf(s.Location), "stage name %q is also the stage's of line %d, which docker's COPY --from and --target take; strata's stage names are unique: this one is named %q (a FROM %s before line %d builds on it, as in docker)", s.Name, lineOf(stages[j].Location), n, s.Name, lineOf(stages[j].Location))
		}
		names[i] = n
		used[n] = true
	}
	refs := func(ref string) {
		if i, err := strconv.Atoi(ref); err == nil && i >= 0 && i < len(stages) && names[i] == "" {
			n := fmt.Sprintf("stage-%d", i)
			for used[n] {
				n += "_"
			}
			names[i], used[n] = n, true
		}
	}
	for _, s := range stages {
		refs(s.BaseName)
		for _, cmd := range s.Commands {
			if cp, ok := cmd.(*instructions.CopyCommand); ok && cp.From != "" {
				refs(cp.From)
			}
		}
	}
	return names
}

var badStageChar = regexp.MustCompile(`[^A-Za-z0-9_-]`)

func validStageName(n string) string {
	n = badStageChar.ReplaceAllString(n, "-")
	if n == "" || n[0] >= '0' && n[0] <= '9' || n[0] == '-' {
		n = "s" + n
	}
	if n == "scratch" {
		n = "scratch-stage"
	}
	return n
}

func lineOf(loc []parser.Range) int {
	if len(loc) > 0 {
		return loc[0].Start.Line
	}
	return 0
}

// stageIndex resolves a FROM or COPY --from value to an earlier stage, as
// docker does: by name (case-insensitive; the latest of a name used twice)
// or by index.
func (c *converter) stageIndex(ref string, before int) int {
	for i := before - 1; i >= 0; i-- {
		if c.dockerNames[i] != "" && strings.EqualFold(c.dockerNames[i], ref) {
			return i
		}
	}
	if i, err := strconv.Atoi(ref); err == nil && i >= 0 && i < before {
		return i
	}
	return -1
}

// newStage starts a stage from its FROM line.
func (c *converter) newStage(st *instructions.Stage, index int, names []string) *stageOut {
	s := &stageOut{name: names[index], line: lineOf(st.Location), env: map[string]string{}, unset: map[string]bool{}, comments: st.Comments, parent: -1,
		argSet: map[string]string{}, envLine: map[string]int{}, envArg: map[string]bool{}}
	c.dockerNames = append(c.dockerNames, st.Name)
	fromVars := c.fromVars()
	if p, viaArg := c.baseStage(st.BaseName, index, fromVars); p >= 0 {
		parent := c.stages[p]
		s.from, s.parent = parent.name, p
		if viaArg {
			s.from = c.stageFromArg(st.BaseName, parent.name)
			c.markFromArgs(st.BaseName)
		}
		for k, v := range parent.env {
			s.env[k] = v
		}
		s.cur, s.open, s.cfg, s.user = parent.cur, parent.open, parent.cfg.clone(), parent.user
		s.baseShell = parent.stageShell()
		s.wd, s.workdirs = parent.wd, maps.Clone(parent.workdirs)
		// docker's stage starts with the ARGs of the stage it is built on.
		s.args = append([]string(nil), parent.args...)
		for k := range parent.unset {
			s.unset[k] = true
		}
		s.argSet, s.envLine, s.envArg = maps.Clone(parent.argSet), maps.Clone(parent.envLine), maps.Clone(parent.envArg)
	} else {
		s.from = imageRef(c.word(s.line, st.BaseName, fromVars))
		s.open = s.from != "scratch"
		c.markFromArgs(st.BaseName)
		c.explicitBaseArg(st.BaseName)
	}
	if s.cur == nil {
		s.cur = defaultShell
	}
	if s.baseShell == nil {
		s.baseShell = defaultShell
	}
	if st.Platform != "" {
		s.platform = c.word(s.line, st.Platform, fromVars)
		c.markFromArgs(st.Platform)
	}
	return s
}

// baseStage resolves a FROM's base to an earlier stage, as docker does: by
// its name as written, else as expanded with the global ARGs' defaults
// (FROM ${BASE} with ARG BASE=builder is the stage builder). viaArg says
// it took the expansion.
func (c *converter) baseStage(base string, before int, v vars) (i int, viaArg bool) {
	if i := c.stageIndex(base, before); i >= 0 || !strings.Contains(base, "$") {
		return i, false
	}
	i = c.stageIndex(c.staticValue(base, v), before)
	if i < 0 || c.stages[i].name == "" {
		return -1, false
	}
	return i, true
}

// stageFromArg is the from: of a FROM whose variables name the stage name
// (strata's name for it) with their defaults: FROM ${BASE} stays
// ${BASE}, its arg's default made the stage's strata name, so that a
// --build-arg still chooses the base; any other form is the stage's name.
func (c *converter) stageFromArg(base, name string) string {
	if m := wholeVarRe.FindStringSubmatch(base); m != nil {
		if a, ok := c.argIndex[m[1]]; ok && a.def != nil {
			a.def = &name
			return "${" + m[1] + "}"
		}
	}
	return name
}

// fromVars is the scope of FROM lines: the global ARGs and the
// predefined platform args.
func (c *converter) fromVars() vars {
	known := map[string]string{}
	for k, v := range c.meta {
		known[k] = v
	}
	for _, p := range recipe.PredefinedArgs() {
		if _, ok := known[p]; !ok {
			known[p] = ""
		}
	}
	return vars{known: known}
}

var refVarRe = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

// markFromArgs notes the args a FROM line uses: without a default they
// must be given with --build-arg.
func (c *converter) markFromArgs(w string) {
	for _, m := range refVarRe.FindAllStringSubmatch(w, -1) {
		if a, ok := c.argIndex[m[1]]; ok {
			a.fromUse = true
		}
	}
}

var wholeVarRe = regexp.MustCompile(`^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$`)

// explicitBaseArg gives an arg that is a whole FROM (FROM ${BASE}) an
// explicit image reference as its default (busybox:latest for busybox),
// so that strata does not take it for a stage name.
func (c *converter) explicitBaseArg(from string) {
	m := wholeVarRe.FindStringSubmatch(from)
	if m == nil {
		return
	}
	if a, ok := c.argIndex[m[1]]; ok && a.def != nil {
		ref := imageRef(*a.def)
		a.def = &ref
	}
}

// imageRef makes a docker image reference explicit for strata: a bare
// name gets docker's implicit :latest, so that it cannot be mistaken for
// a stage name.
func imageRef(ref string) string {
	if ref == "scratch" || ref == "" || strings.Contains(ref, "${") {
		return ref
	}
	last := ref[strings.LastIndex(ref, "/")+1:]
	if strings.Contains(last, ":") || strings.Contains(ref, "@") {
		return ref
	}
	return ref + ":latest"
}

// vars is the scope of a word in the stage: its ENVs and ARGs.
func (c *converter) vars(s *stageOut) vars {
	v := vars{known: map[string]string{}, open: s.open, elsewhere: map[string]bool{}, env: map[string]bool{}, literal: map[string]bool{}}
	for _, a := range c.args {
		v.elsewhere[a.name] = true
	}
	for _, a := range s.args {
		delete(v.elsewhere, a)
		v.known[a] = c.argValue(a)
		if s.unset[a] {
			v.known[a], v.literal[a] = "", true
		}
	}
	for k, val := range s.env {
		delete(v.elsewhere, k)
		delete(v.literal, k)
		if argVal, over := s.argSet[k]; over {
			// An ARG after the ENV: docker's value is the arg's, which
			// strata's ${NAME} gives only if the ENV's value is it.
			v.known[k] = argVal
			if _, shadowed := c.argShadowed(s, k); shadowed {
				v.literal[k] = true
			}
			continue
		}
		v.known[k] = val
		v.env[k] = true
	}
	return v
}

// imageVars is the scope of a value of the image: section. It sees the
// args, not the env steps: an arg whose ARG came after an ENV of its name
// is written ${NAME} there, as docker gives the ARG's value.
func (c *converter) imageVars(s *stageOut) vars {
	v := c.vars(s)
	v.image = true
	for k := range s.argSet {
		if _, shadowed := c.argShadowed(s, k); shadowed {
			delete(v.literal, k)
		}
	}
	return v
}

// argValue is an arg's default value as docker uses it.
func (c *converter) argValue(name string) string {
	if a, ok := c.argIndex[name]; ok && a.def != nil {
		return *a.def
	}
	return ""
}

// add appends a step, with the comments pending before it.
func (s *stageOut) add(step *yaml.Node, dockerComments []string) {
	var lines []string
	lines = append(lines, s.pending...)
	lines = append(lines, dockerComments...)
	s.pending = nil
	if len(lines) > 0 {
		step.HeadComment = commentText(lines)
	}
	s.steps = append(s.steps, step)
}

// comment leaves a line for the next step.
func (s *stageOut) comment(lines ...string) { s.pending = append(s.pending, lines...) }

// command translates one instruction of stage s.
func (c *converter) command(s *stageOut, cmd instructions.Command) {
	ln := line(cmd)
	if setsConfig(cmd) {
		s.cfgCmds = append(s.cfgCmds, cmd)
	}
	switch cmd := cmd.(type) {
	case *instructions.EnvCommand:
		c.env(s, cmd)
	case *instructions.ArgCommand:
		c.stageArg(s, cmd)
	case *instructions.RunCommand:
		c.run(s, cmd)
	case *instructions.CopyCommand:
		c.copyCmd(s, cmd)
	case *instructions.AddCommand:
		c.add(s, cmd)
	case *instructions.WorkdirCommand:
		c.workdir(s, cmd)
	case *instructions.UserCommand:
		s.user = ownerSpec(c.word(ln, cmd.User, c.vars(s)))
		s.add(mapping("user", str(s.user)), cmd.Comments())
	case *instructions.ShellCommand:
		c.shell(s, cmd)
	case *instructions.LabelCommand:
		v := c.imageVars(s)
		for _, kv := range cmd.Labels {
			if k, ok := c.key(ln, "LABEL", kv.Key, v); ok {
				s.cfg.setLabel(k, c.word(ln, kv.Value, v))
			}
		}
		s.comment(cmd.Comments()...)
	case *instructions.MaintainerCommand:
		s.cfg.setLabel("org.opencontainers.image.authors", escapeDollar(cmd.Maintainer))
		c.warnf(ln, "MAINTAINER sets docker's deprecated author field, which strata does not write; written as the label org.opencontainers.image.authors")
	default:
		c.imageCommand(s, cmd)
	}
}

// unsupported reports an instruction without a strata equivalent and
// leaves it as a comment where it was.
func (c *converter) unsupported(s *stageOut, cmd instructions.Command, why string) {
	c.warnf(line(cmd), "%s; left as a comment", why)
	s.comment(append(cmd.Comments(), "strata convert: "+why+":", cmdText(cmd))...)
}

// cmdText is an instruction's source text, on one line per source line.
func cmdText(cmd instructions.Command) string {
	if st, ok := cmd.(fmt.Stringer); ok {
		return st.String()
	}
	return cmd.Name()
}

// env translates ENV: an env step. A name the ENV sets twice (ENV A=1
// A=2) takes the last value in the place of the first, as docker's
// config does; strata refuses a key twice in one env mapping.
func (c *converter) env(s *stageOut, cmd *instructions.EnvCommand) {
	ln := line(cmd)
	v := c.vars(s)
	var pairs, keys, values []string
	at := map[string]int{}
	for _, kv := range cmd.Env {
		k, ok := c.key(ln, "ENV", kv.Key, v)
		if !ok {
			continue
		}
		val, static := c.word(ln, kv.Value, v), c.staticValue(kv.Value, v)
		if i, ok := at[k]; ok {
			pairs[2*i+1], values[i] = val, static
			continue
		}
		at[k] = len(keys)
		pairs = append(pairs, k, val)
		keys, values = append(keys, k), append(values, static)
	}
	if len(pairs) == 0 {
		s.comment(cmd.Comments()...)
		return
	}
	// The values of one ENV see the variables as they were before it.
	for i, k := range keys {
		s.env[k], s.envLine[k] = values[i], ln
		s.envArg[k] = pairs[2*i+1] == "${"+k+"}" && contains(s.args, k) && !v.env[k]
		delete(s.argSet, k)
	}
	s.add(mapping("env", strMap(pairs...)), cmd.Comments())
}

// shell translates SHELL: it applies to the run steps after it, and to
// the string forms of CMD and ENTRYPOINT.
func (c *converter) shell(s *stageOut, cmd *instructions.ShellCommand) {
	s.cur = append([]string(nil), cmd.Shell...)
	s.cfg.shell, s.cfg.shellLine = s.cur, line(cmd)
	s.comment(cmd.Comments()...)
}

// ownerSpec is a USER or --chown value as strata takes it: docker gives
// "user:" (no group after the colon) the group "user" alone has, strata
// refuses it.
func ownerSpec(u string) string {
	if strings.Count(u, ":") == 1 && strings.HasSuffix(u, ":") {
		return strings.TrimSuffix(u, ":")
	}
	return u
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
