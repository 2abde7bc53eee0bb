package convert

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/stratabuild/strata/recipe"
)

// Warning is something of the Dockerfile the recipe does not carry, or
// carries differently, at a line of the Dockerfile.
type Warning struct {
	File string
	Line int
	Msg  string
}

// String returns "FILE:LINE: message".
func (w Warning) String() string {
	if w.Line == 0 {
		return w.File + ": " + w.Msg
	}
	return w.File + ":" + strconv.Itoa(w.Line) + ": " + w.Msg
}

// Result is a converted Dockerfile.
type Result struct {
	// Recipe is the strata.yaml text. Every instruction without an
	// equivalent is left in it as a comment where it was.
	Recipe []byte
	// Warnings are in Dockerfile order.
	Warnings []Warning
}

// ParseError is a Dockerfile that docker's parser rejects.
type ParseError struct {
	File string
	Line int
	Err  error
}

func (e *ParseError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Convert translates the Dockerfile src, named name in warnings, into an
// equivalent strata recipe. The error is a *ParseError when the
// Dockerfile does not parse.
func Convert(name string, src []byte) (*Result, error) {
	res, err := parser.Parse(bytes.NewReader(src))
	if err != nil {
		return nil, parseError(name, err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, parseError(name, err)
	}
	if len(stages) == 0 {
		return nil, &ParseError{File: name, Err: errors.New("no FROM instruction: a Dockerfile needs at least one stage")}
	}
	c := &converter{
		file:      name,
		lex:       shell.NewLex(res.EscapeToken),
		argIndex:  map[string]*argOut{},
		meta:      map[string]string{},
		metaSet:   map[string]bool{},
		stageDef:  map[string]bool{},
		lastStage: map[string]int{},
	}
	c.convert(stages, metaArgs)
	out, err := c.emit()
	if err != nil {
		return nil, fmt.Errorf("writing the recipe: %w", err)
	}
	sort.SliceStable(c.warnings, func(i, j int) bool { return c.warnings[i].Line < c.warnings[j].Line })
	return &Result{Recipe: out, Warnings: c.warnings}, nil
}

var parseLineRe = regexp.MustCompile(`(?s)^dockerfile parse error on line (\d+): (.*)$`)

// parseError positions an error of buildkit's parser.
func parseError(name string, err error) error {
	pe := &ParseError{File: name, Err: err}
	if m := parseLineRe.FindStringSubmatch(err.Error()); m != nil {
		pe.Line, _ = strconv.Atoi(m[1])
		pe.Err = errors.New(m[2])
		return pe
	}
	var loc *parser.LocationError
	if errors.As(err, &loc) && len(loc.Locations) > 0 && len(loc.Locations[0]) > 0 {
		pe.Line = loc.Locations[0][0].Start.Line
	}
	return pe
}

// converter holds the state of one conversion.
type converter struct {
	file     string
	lex      *shell.Lex
	warnings []Warning
	// args are the recipe's args in order of first declaration.
	args     []*argOut
	argIndex map[string]*argOut
	// meta are the global ARGs (before the first FROM) and their values.
	meta map[string]string
	// metaSet are the global ARGs declared with a default.
	metaSet map[string]bool
	// stageDef are the ARGs some stage declares with a non-empty
	// default: the recipe's arg gets it, but docker gives it to no
	// other stage.
	stageDef map[string]bool
	stages   []*stageOut
	// dockerNames are the stages' names in the Dockerfile, so far.
	dockerNames []string
	// lastStage is the index of the last stage of each name: docker's
	// COPY --from takes it.
	lastStage map[string]int
	// stageLines are the FROM lines of all the stages.
	stageLines []int
}

// argOut is one entry of the recipe's args.
type argOut struct {
	name string
	// def is the default; nil writes NAME: with no value (it must be
	// given with --build-arg).
	def  *string
	line int
	// fromUse: a FROM line uses it.
	fromUse bool
}

func (c *converter) warnf(line int, format string, a ...any) {
	c.warnings = append(c.warnings, Warning{File: c.file, Line: line, Msg: fmt.Sprintf(format, a...)})
}

// line is the first line of a command.
func line(cmd instructions.Command) int { return lineOf(cmd.Location()) }

// convert translates every stage, in order.
func (c *converter) convert(stages []instructions.Stage, metaArgs []instructions.ArgCommand) {
	for i := range metaArgs {
		c.globalArg(&metaArgs[i])
	}
	for _, st := range stages {
		for _, cmd := range st.Commands {
			if a, ok := cmd.(*instructions.ArgCommand); ok {
				for _, kv := range a.Args {
					if kv.Value != nil && *kv.Value != "" {
						c.stageDef[kv.Key] = true
					}
				}
			}
		}
	}
	names := c.stageNames(stages)
	for i := range stages {
		s := c.newStage(&stages[i], i, names)
		c.stages = append(c.stages, s)
		for _, cmd := range stages[i].Commands {
			c.command(s, cmd)
		}
	}
	c.targetConfigs()
}

// globalArg records an ARG before the first FROM: in scope for FROM lines.
func (c *converter) globalArg(a *instructions.ArgCommand) {
	ln := line(a)
	for _, kv := range a.Args {
		v := vars{known: c.meta}
		if kv.Value == nil {
			if _, ok := c.meta[kv.Key]; !ok {
				c.meta[kv.Key] = ""
			}
			c.declareArg(kv.Key, nil, ln)
			continue
		}
		val := c.argDefault(ln, kv.Key, *kv.Value, v)
		c.meta[kv.Key] = c.staticValue(*kv.Value, v)
		c.metaSet[kv.Key] = true
		c.declareArg(kv.Key, &val, ln)
	}
}

// argDefault translates an ARG's default. strata does not expand args'
// defaults, so one that refers to other variables is evaluated now, and
// the value is written as it is: a literal "${" in it is not escaped, as
// strata would not unescape it either.
func (c *converter) argDefault(ln int, name, raw string, v vars) string {
	val := c.staticValue(raw, v)
	if strings.Contains(raw, "$") && val != raw && c.hasVars(raw) {
		c.warnf(ln, "ARG %s's default %q refers to other variables; written as its value %q (strata does not expand args' defaults)", name, raw, val)
	}
	return val
}

// hasVars says whether docker's expansion of w uses variables.
func (c *converter) hasVars(w string) bool {
	res, err := c.lex.ProcessWordWithMatches(w, &getter{v: vars{}, static: true, missing: map[string]bool{}})
	return err != nil || len(res.Matched)+len(res.Unmatched) > 0
}

// declareArg adds an arg to the recipe, or checks it against the one
// declared before: strata's args are global, docker's per stage.
func (c *converter) declareArg(name string, def *string, ln int) {
	if isPredefined(name) {
		return
	}
	prev, ok := c.argIndex[name]
	if !ok {
		a := &argOut{name: name, def: def, line: ln}
		c.args = append(c.args, a)
		c.argIndex[name] = a
		return
	}
	switch {
	case def == nil:
	case prev.def == nil:
		prev.def = def
	case *prev.def != *def:
		c.warnf(ln, "ARG %s has the default %q here and %q at line %d; strata's args are one per recipe: kept %q", name, *def, *prev.def, prev.line, *prev.def)
	}
}

// isPredefined says whether name is a predefined arg of strata's (and
// docker's): the recipe may use it without declaring it.
func isPredefined(name string) bool {
	return slices.Contains(recipe.PredefinedArgs(), name)
}
