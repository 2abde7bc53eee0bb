package recipe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The keys each mapping of a recipe allows.
var (
	topKeys     = []string{"from", "platform", "args", "env", "workdir", "user", "shell", "steps", "stages", "image"}
	stageKeys   = []string{"name", "from", "platform", "env", "workdir", "user", "shell", "steps"}
	actionKeys  = []string{"run", "copy", "file", "env", "workdir", "user"}
	runKeys     = []string{"run", "name", "network", "env", "mounts"}
	copyKeys    = []string{"copy", "name", "to", "from", "owner", "mode"}
	fileKeys    = []string{"file", "name", "content", "mode", "owner"}
	mountKeys   = []string{"type", "target", "id"}
	imageKeys   = []string{"entrypoint", "cmd", "labels", "annotations", "expose", "volumes", "stop-signal"}
	allStepKeys = []string{"run", "copy", "file", "env", "workdir", "user", "name", "network", "mounts", "to", "from", "owner", "mode", "content"}
)

// Load reads, decodes and validates the recipe at path. The build context
// is path's directory unless WithContext is given. Problems in the recipe
// are returned as an ErrorList; other errors (reading the file) are not.
func Load(path string, opts ...Option) (*Recipe, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading recipe: %w", err)
	}
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if !o.contextOK {
		opts = append(opts, WithContext(filepath.Dir(path)))
	}
	return Parse(path, data, opts...)
}

// Parse decodes and validates a recipe held in data; name is the file
// part of every position. The build context is "." unless WithContext is
// given. The error, if any, is an ErrorList with every problem found.
func Parse(name string, data []byte, opts ...Option) (*Recipe, error) {
	o := options{context: "."}
	for _, opt := range opts {
		opt(&o)
	}
	d := &decoder{file: name}
	r := d.parse(data, o)
	if err := d.errs.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError rewords a yaml.v3 error as a positioned Error. yaml.v3
// gives a line only; the column is guessed from the line's text (see
// syntaxCol).
func (d *decoder) syntaxError(err error, data []byte) {
	msg := err.Error()
	p := Pos{File: d.file}
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	if p.Line > 0 {
		lines := strings.Split(string(data), "\n")
		if p.Line <= len(lines) {
			line := lines[p.Line-1]
			p.Col = syntaxCol(line, msg)
			if p.Col <= len(line) && line[p.Col-1] == '\t' {
				msg += " (a tab: YAML is indented with spaces only)"
			}
		}
	}
	d.errs = append(d.errs, &Error{Pos: p, Msg: "invalid YAML: " + msg})
}

// syntaxCol guesses the column of a YAML syntax error on line: the first
// tab of the indentation, the second ": " for "mapping values are not
// allowed", else the first character that is not a space.
func syntaxCol(line, msg string) int {
	indent := len(line) - len(strings.TrimLeft(line, " \t"))
	if i := strings.IndexByte(line[:indent], '\t'); i >= 0 {
		return i + 1
	}
	if strings.Contains(msg, "mapping values are not allowed") {
		if first := strings.Index(line, ": "); first >= 0 {
			if second := strings.Index(line[first+2:], ":"); second >= 0 {
				return first + 2 + second + 1
			}
		}
	}
	return indent + 1
}

// topLevel is what every stage of a multi-stage recipe inherits.
type topLevel struct {
	m        *mapping
	argScope *scope
}

// parse decodes a whole recipe; problems go to d.errs.
func (d *decoder) parse(data []byte, o options) *Recipe {
	r := &Recipe{File: d.file, Context: o.context}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		d.syntaxError(err, data)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.errorf(&extra, "", "a recipe is one YAML document; remove the second one (---)")
	} else if !errors.Is(err, io.EOF) {
		d.syntaxError(err, data)
		return nil
	}
	var root *yaml.Node
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		root = d.node(doc.Content[0])
	}
	if root == nil || root.ShortTag() == "!!null" || root.Kind == yaml.MappingNode && len(root.Content) == 0 {
		d.errorAt(Pos{File: d.file}, "", "empty recipe: want from: and steps:, or stages:")
		return nil
	}
	m := d.mapping(root, "", "")
	if m == nil {
		return nil
	}
	d.checkKeys(m, topKeys, "", "")
	top := &topLevel{m: m}
	r.Args, top.argScope = d.args(m.get("args"), o.buildArgs, &r.Warnings)
	d.stages(r, top, o.context)
	r.Image = d.image(m, top)
	r.Warnings = append(r.Warnings, dedupWarnings(d.warnings)...)
	return r
}

var argNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// args decodes `args` and applies build args; it returns the args and
// the scope they make.
func (d *decoder) args(n *yaml.Node, buildArgs map[string]string, warnings *[]Warning) ([]Arg, *scope) {
	sc := &scope{vars: map[string]value{}, unsetArgs: map[string]bool{}}
	var args []Arg
	if n != nil {
		if m := d.mapping(n, "", "args"); m != nil {
			for _, k := range m.order {
				f := m.fields[k]
				a := Arg{Name: k, Pos: d.pos(f.key)}
				if !argNameRe.MatchString(k) {
					d.errorf(f.key, "", "args: bad name %q: want letters, digits and _, not starting with a digit", k)
				}
				v := d.node(f.val)
				if v == nil {
					continue
				}
				if v.ShortTag() != "!!null" {
					s, ok := d.scalar(v, "", "args: "+k)
					if !ok {
						continue
					}
					a.Default, a.HasDefault = s, true
					a.Value, a.Set = s, true
				}
				if bv, ok := buildArgs[k]; ok {
					a.Value, a.Set = bv, true
				}
				args = append(args, a)
			}
		}
	}
	var unused []string
	for k := range buildArgs {
		if !containsArg(args, k) {
			unused = append(unused, k)
		}
	}
	sort.Strings(unused)
	for _, k := range unused {
		*warnings = append(*warnings, Warning{Pos: Pos{File: d.file}, Msg: fmt.Sprintf("build arg %s is not declared in args (build-args were not consumed)", k)})
	}
	for _, a := range args {
		if a.Set {
			sc.vars[a.Name] = value{s: a.Value, known: true}
		} else {
			sc.unsetArgs[a.Name] = true
		}
	}
	return args, sc
}

func containsArg(args []Arg, name string) bool {
	for _, a := range args {
		if a.Name == name {
			return true
		}
	}
	return false
}

// dedupWarnings sorts warnings by position and drops repeats (a top-level
// value is decoded once per stage).
func dedupWarnings(ws []Warning) []Warning {
	sort.SliceStable(ws, func(i, j int) bool {
		a, b := ws[i].Pos, ws[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	var out []Warning
	for i, w := range ws {
		if i > 0 && w == ws[i-1] {
			continue
		}
		out = append(out, w)
	}
	return out
}
