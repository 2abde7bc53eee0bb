package recipe

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/stratabuild/strata/internal/inputfile"
)

// The keys each mapping of a recipe allows.
var (
	topKeys    = []string{"from", "platform", "platforms", "args", "env", "workdir", "user", "shell", "steps", "stages", "image"}
	stageKeys  = []string{"name", "from", "platform", "env", "workdir", "user", "shell", "steps"}
	actionKeys = []string{"run", "copy", "file", "env", "workdir", "user"}
	runKeys    = []string{"run", "name", "network", "env", "mounts"}
	copyKeys   = []string{"copy", "name", "to", "from", "owner", "mode"}
	fileKeys   = []string{"file", "name", "content", "mode", "owner"}
	mountKeys  = []string{"type", "target", "id"}
	imageKeys  = []string{"entrypoint", "cmd", "labels", "annotations", "expose", "volumes", "stop-signal"}
)

// allStepKeys are the keys any step may have: the actions, then the other
// keys of each kind of step (stepKeys), in kind order.
var allStepKeys = func() []string {
	all := slices.Clone(actionKeys)
	for k := StepKind(0); int(k) < len(stepKindNames); k++ {
		for _, key := range stepKeys[k] {
			if !slices.Contains(all, key) {
				all = append(all, key)
			}
		}
	}
	return all
}()

// MaxSize is the largest recipe Load reads, 1 MiB: a recipe is a few
// kilobytes of text; the largest real ones are under 100 KiB.
const MaxSize = 1 << 20

// Load reads, decodes and validates the recipe at path. The build context
// is path's directory unless WithContext is given. Only a regular file of
// at most MaxSize bytes is read: a FIFO, a device or a larger file is
// refused at once. Problems in the recipe are returned as an ErrorList;
// other errors (reading the file) are not.
func Load(path string, opts ...Option) (*Recipe, error) {
	data, err := inputfile.Read(path, inputfile.Options{Max: MaxSize, What: "recipe"})
	if err != nil {
		return nil, err
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
	r.src = &source{data: data, opts: opts}
	return r, nil
}

var yamlLineRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError rewords a yaml.v3 error as a positioned Error. yaml.v3
// gives a line only, for some problems another's (see problemLine); the
// column is guessed from the line's text (see syntaxCol).
func (d *decoder) syntaxError(err error, data []byte) {
	msg := err.Error()
	p := Pos{File: d.file}
	if m := yamlLineRe.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	if n, ok := problemLine(data, p.Line, msg); ok {
		p.Line = n
	}
	lines := strings.Split(string(data), "\n")
	if p.Line > 0 && p.Line <= len(lines) {
		line := lines[p.Line-1]
		p.Col = syntaxCol(line, msg)
		switch {
		case p.Col > len(line) || line[p.Col-1] != '\t':
		case strings.Contains(msg, "tab"):
			msg += " (YAML is indented with spaces only)"
		default:
			msg += " (a tab: YAML is indented with spaces only)"
		}
	}
	d.errs = append(d.errs, &Error{Pos: p, Msg: "invalid YAML: " + msg})
}

// problemLine finds the line where yaml.v3 met the problem msg names,
// when msg is one whose line it gives as another's: the line of the
// scalar it was scanning (a tab in an indentation after it), or of the
// sequence or mapping it was in (an entry or a key indented wrongly).
// The decoder goes forward from there, and meets the problem on the first
// line that, decoded with the lines before it, gives the same error (with
// fewer lines the input ends before it: the decoder stops without it;
// with more it stops at it all the same), found by bisection. ok is false
// for other messages, or if no line does.
func problemLine(data []byte, from int, msg string) (line int, ok bool) {
	if !strings.Contains(msg, "found a tab character") && msg != "did not find expected '-' indicator" && msg != "did not find expected key" {
		return 0, false
	}
	lines := strings.SplitAfter(string(data), "\n")
	from = max(from, 1)
	same := func(n int) bool {
		err := decodeAll(strings.Join(lines[:n], ""))
		return err != nil && strings.HasSuffix(err.Error(), ": "+msg)
	}
	n := from + sort.Search(len(lines)-from+1, func(i int) bool { return same(from + i) })
	if n > len(lines) {
		return 0, false
	}
	return n, true
}

// decodeAll decodes every YAML document of text; it returns the first
// error.
func decodeAll(text string) error {
	dec := yaml.NewDecoder(strings.NewReader(text))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
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

// checkText reports the first character of data that the YAML decoder
// would refuse with no position: a byte that is not UTF-8, or a control
// character. Its position counts lines as YAML does and columns in
// characters. A UTF-16 recipe (it starts with its byte order mark) is left
// to the decoder.
func (d *decoder) checkText(data []byte) bool {
	if bytes.HasPrefix(data, []byte{0xFE, 0xFF}) || bytes.HasPrefix(data, []byte{0xFF, 0xFE}) {
		return true
	}
	p := Pos{File: d.file, Line: 1, Col: 1}
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			d.errorAt(p, "", "invalid UTF-8 (byte %#02x): a recipe must be UTF-8 text", data[i])
			return false
		case !yamlAllowed(r):
			d.errorAt(p, "", "control character %U is not allowed in YAML (in a double-quoted string, write it as %s)", r, escape(r))
			return false
		}
		i += size
		switch {
		case r == '\r' && i < len(data) && data[i] == '\n':
			// CR LF is one line break, counted at the LF.
		case r == '\n' || r == '\r' || r == 0x85 || r == 0x2028 || r == 0x2029:
			p.Line, p.Col = p.Line+1, 1
		default:
			p.Col++
		}
	}
	return true
}

// yamlAllowed reports whether r may appear in a YAML stream (YAML 1.1's
// c-printable, as the decoder checks it).
func yamlAllowed(r rune) bool {
	switch {
	case r == 0x09, r == 0x0A, r == 0x0D, r >= 0x20 && r <= 0x7E, r == 0x85:
		return true
	case r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}

// escape writes r as a YAML double-quoted escape.
func escape(r rune) string {
	if r < 0x100 {
		return fmt.Sprintf(`\x%02x`, r)
	}
	return fmt.Sprintf(`\u%04x`, r)
}

// topLevel is what every stage of a multi-stage recipe inherits.
type topLevel struct {
	m        *mapping
	argScope *scope
}

// parse decodes a whole recipe; problems go to d.errs.
func (d *decoder) parse(data []byte, o options) *Recipe {
	r := &Recipe{File: d.file, Context: o.context}
	if !d.checkText(data) {
		return nil
	}
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
	for k, v := range platformArgs(o.target) {
		if bv, given := o.buildArgs[k]; given {
			if containsArg(r.Args, k) {
				continue // declared: args applied the build arg
			}
			v = bv // a predefined arg given: it wins, as in buildx
		}
		top.argScope.vars[k] = value{s: v, known: true}
		delete(top.argScope.unsetArgs, k)
	}
	r.Platforms = d.platforms(m.get("platforms"), top.argScope)
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
	predefined := platformArgs(Platform{})
	for k := range buildArgs {
		if _, ok := predefined[k]; !ok && !containsArg(args, k) {
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
