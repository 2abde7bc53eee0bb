package recipe

import (
	"fmt"
	"os"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
)

// stepKeys are the keys each kind of step allows, its action key first.
var stepKeys = map[StepKind][]string{
	RunStep:     runKeys,
	CopyStep:    copyKeys,
	FileStep:    fileKeys,
	EnvStep:     {"env", "name"},
	WorkdirStep: {"workdir", "name"},
	UserStep:    {"user", "name"},
}

// The values of the recipe's enumerations, as the loader accepts them.
var (
	networks   = []Network{NetworkNone, NetworkHost}
	mountTypes = []MountType{MountCache, MountSecret, MountTmpfs}
)

// enumStrings returns the enumeration's values as strings, for messages
// and the schema.
func enumStrings[T ~string](values []T) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = string(v)
	}
	return out
}

// oneOf joins words as "a, b or c".
func oneOf(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// requiredKey is a key a step needs besides its action, and the message
// of its absence.
type requiredKey struct{ key, msg string }

// stepRequired are the keys each kind of step needs besides its action.
var stepRequired = map[StepKind][]requiredKey{
	CopyStep: {{"to", "copy: missing to: (the destination)"}},
	FileStep: {{"content", `file: missing content: (the file's text; content: "" for an empty file)`}},
}

// steps decodes a stage's `steps` list into s.Steps.
func (d *decoder) steps(n *yaml.Node, s *Stage, st *state, where string) {
	n = d.node(n)
	if n == nil {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, where, "steps: expected a list of steps, got %s", describe(n))
		return
	}
	for i, sn := range n.Content {
		sw := fmt.Sprintf("step %d", i+1)
		if where != "" {
			sw = where + ": " + sw
		}
		if step := d.step(sn, s, st, sw); step != nil {
			step.Index = len(s.Steps)
			s.Steps = append(s.Steps, step)
		}
	}
}

// step decodes one step; it returns nil when the step has no single action.
func (d *decoder) step(n *yaml.Node, s *Stage, st *state, where string) *Step {
	m := d.mapping(n, where, "")
	if m == nil {
		return nil
	}
	// env is an action, except beside run, where it is the run's own env.
	var actions []string
	for _, k := range m.order {
		if contains(actionKeys, k) && (k != "env" || !m.has("run")) {
			actions = append(actions, k)
		}
	}
	switch len(actions) {
	case 0:
		suggested := d.checkKeys(m, allStepKeys, where, "")
		for _, sug := range suggested {
			if contains(actionKeys, sug) {
				return nil // the unknown key is the misspelt action
			}
		}
		d.errorf(m.node, where, "missing action: a step needs one of %s", strings.Join(actionKeys, ", "))
		return nil
	case 1:
	default:
		d.errorf(m.keyNode(actions[1]), where, "two actions in one step: %s and %s (split it into two steps)", actions[0], actions[1])
		return nil
	}
	kind := StepKind(indexOf(stepKindNames[:], actions[0]))
	d.checkStepKeys(m, kind, where)
	for _, rk := range stepRequired[kind] {
		if !m.has(rk.key) && !misspelt(m, rk.key, stepKeys[kind]) {
			d.errorf(m.keyNode(actions[0]), where, "%s", rk.msg)
		}
	}
	step := &Step{Kind: kind, Pos: d.pos(m.node)}
	if nn := m.get("name"); nn != nil {
		step.Name, _ = d.str(nn, st.sc, where, "name")
	}
	val := m.get(actions[0])
	switch kind {
	case RunStep:
		step.Run = d.run(m, s, st, where)
	case CopyStep:
		step.Copy = d.copyStep(m, s, st, where)
	case FileStep:
		step.File = d.fileStep(m, st, where)
	case EnvStep:
		vars, known := d.env(val, st.sc, where, "env")
		st.sc = st.sc.set(vars, known)
		step.Env = vars
	case WorkdirStep:
		v, ok := d.str(val, st.sc, where, "workdir")
		if !ok {
			step.Workdir, st.wd, st.wdOK = v, v, false
			break
		}
		if v == "" {
			d.errorf(val, where, "workdir: empty path")
			break
		}
		wd, ok := st.resolve(v)
		if ok {
			wd = strings.TrimSuffix(wd, "/")
			if wd == "" {
				wd = "/"
			}
		}
		step.Workdir, st.wdOK = wd, ok
		if !ok || path.IsAbs(wd) {
			st.wd = wd
		}
	case UserStep:
		step.User = d.user(val, st.sc, where)
	}
	return step
}

// checkStepKeys reports keys that do not belong in a step of kind.
func (d *decoder) checkStepKeys(m *mapping, kind StepKind, where string) {
	allowed := stepKeys[kind]
	for _, k := range m.order {
		switch {
		case contains(allowed, k):
		case contains(allStepKeys, k):
			d.errorf(m.keyNode(k), where, "key %q does not belong in a %s step (a %s step allows %s)", k, kind, kind, strings.Join(allowed[1:], ", "))
		default:
			d.checkKeys(&mapping{node: m.node, fields: map[string]field{k: m.fields[k]}, order: []string{k}}, allowed, where, "")
		}
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// run decodes a run step.
func (d *decoder) run(m *mapping, s *Stage, st *state, where string) *Run {
	r := &Run{Network: NetworkNone}
	sc := st.sc
	if n := m.get("env"); n != nil {
		vars, known := d.env(n, sc, where, "env")
		sc = sc.set(vars, known)
		r.Env = vars
	}
	if n := m.get("network"); n != nil {
		if v, ok := d.str(n, st.sc, where, "network"); ok {
			if contains(enumStrings(networks), v) {
				r.Network = Network(v)
			} else {
				d.errorf(n, where, "network: bad value %q (want %s)", v, oneOf(enumStrings(networks)))
			}
		}
	}
	n := d.node(m.get("run"))
	switch {
	case n == nil:
	case n.Kind == yaml.SequenceNode:
		items, _ := d.scalarList(n, where, "run", false)
		r.Exec = true
		r.Args = d.strs(items, sc, where, "run")
		if len(n.Content) == 0 {
			d.errorf(n, where, "run: empty command")
		} else if len(r.Args) > 0 && r.Args[0] == "" && !strings.Contains(n.Content[0].Value, "${") {
			d.errorf(n.Content[0], where, "run: empty program name: the exec form's first item is the program to run")
		}
	default:
		if v, ok := d.scalar(n, where, "run"); ok {
			r.Command, _ = d.expand(n, v, sc, where)
			r.Shell = s.Shell
			if strings.TrimSpace(v) == "" {
				d.errorf(n, where, "run: empty command")
			}
		}
	}
	if n := m.get("mounts"); n != nil {
		r.Mounts = d.mounts(n, sc, st, where)
	}
	return r
}

// mounts decodes a run step's mounts.
func (d *decoder) mounts(n *yaml.Node, sc *scope, st *state, where string) []Mount {
	n = d.node(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, where, "mounts: expected a list of mounts, got %s", describe(n))
		return nil
	}
	var out []Mount
	targets := map[string]int{}
	for i, mn := range n.Content {
		what := fmt.Sprintf("mounts[%d]", i)
		m := d.mapping(mn, where, what)
		if m == nil {
			continue
		}
		d.checkKeys(m, mountKeys, where, what)
		mt := Mount{Pos: d.pos(m.node)}
		typeOK := false
		types := enumStrings(mountTypes)
		if tn := m.get("type"); tn == nil {
			d.errorf(m.node, where, "%s: missing type (want %s)", what, oneOf(types))
		} else if v, ok := d.str(tn, sc, where, what+": type"); ok {
			switch {
			case contains(types, v):
				mt.Type, typeOK = MountType(v), true
			default:
				msg := fmt.Sprintf("%s: bad type %q (want %s)", what, v, oneOf(types))
				if sug := suggest(v, types); sug != "" {
					msg = fmt.Sprintf("%s: bad type %q (did you mean %q?)", what, v, sug)
				}
				d.errorf(tn, where, "%s", msg)
			}
		}
		targetOK := false
		if tn := m.get("target"); tn == nil {
			d.errorf(m.node, where, "%s: missing target (the path inside the container)", what)
		} else if v, ok := d.str(tn, sc, where, what+": target"); ok {
			switch t, ok := st.resolve(v); {
			case v == "":
				d.errorf(tn, where, "%s: empty target", what)
			case !ok:
				mt.Target = v
			default:
				t = strings.TrimSuffix(t, "/")
				if t == "" {
					d.errorf(tn, where, "%s: target cannot be /", what)
					break
				}
				if prev, dup := targets[t]; dup {
					d.errorf(tn, where, "%s: target %s is already mounted by mounts[%d]", what, t, prev)
					break
				}
				targets[t] = i
				mt.Target, targetOK = t, true
			}
		}
		if in := m.get("id"); in != nil {
			if v, ok := d.str(in, sc, where, what+": id"); ok {
				mt.ID = v
				if v == "" {
					d.errorf(in, where, "%s: empty id", what)
				}
				if mt.Type == MountTmpfs {
					d.errorf(m.keyNode("id"), where, "%s: a tmpfs mount takes no id", what)
				}
			}
		} else if typeOK && mt.Type == MountSecret {
			d.errorf(m.node, where, "%s: a secret mount needs an id (the ID of --secret id=ID,...)", what)
		} else if mt.Type == MountCache && targetOK {
			mt.ID, mt.DefaultID = mt.Target, true
		}
		out = append(out, mt)
	}
	return out
}

// copyStep decodes a copy step.
func (d *decoder) copyStep(m *mapping, s *Stage, st *state, where string) *Copy {
	c := &Copy{}
	src := s.src
	if fn := m.get("from"); fn != nil && src != nil {
		if b, ok := d.ref(fn, src, where, "from"); ok {
			if b.Kind == KindScratch {
				d.errorf(fn, where, "from: scratch has no files to copy")
			} else {
				c.From = &b
			}
		}
	}
	items, _ := d.scalarList(m.get("copy"), where, "copy", true)
	if n := d.node(m.get("copy")); n != nil && n.Kind == yaml.SequenceNode && len(n.Content) == 0 {
		d.errorf(n, where, "copy: empty list: want at least one source")
	}
	fromContext := m.get("from") == nil
	for _, it := range items {
		d.warnBare(it, it.Value, st.sc, where, "copy", "")
		v, ok := d.expand(it, it.Value, st.sc, where)
		if !ok {
			c.Sources = append(c.Sources, v)
			continue
		}
		p, err := cleanSource(v, fromContext)
		if err != nil {
			d.errorf(it, where, "copy: %v", err)
			continue
		}
		c.Sources = append(c.Sources, p)
	}
	// A missing to: is reported by step (see stepRequired).
	if tn := m.get("to"); tn != nil {
		c.To = d.copyTo(tn, items, st, where)
	}
	c.Owner, c.Mode = d.ownerMode(m, st, where)
	return c
}

// ownerMode decodes the owner: and mode: of a copy or file step.
func (d *decoder) ownerMode(m *mapping, st *state, where string) (*Owner, *os.FileMode) {
	var owner *Owner
	var mode *os.FileMode
	if on := m.get("owner"); on != nil {
		if v, ok := d.str(on, st.sc, where, "owner"); ok {
			o, err := ParseOwner(v)
			if err != nil {
				d.errorf(on, where, "owner: %v", err)
			} else {
				owner = &o
			}
		}
	}
	if mn := m.get("mode"); mn != nil {
		if v, ok := d.str(mn, st.sc, where, "mode"); ok {
			fm, err := ParseMode(v)
			if err != nil {
				d.errorf(mn, where, "mode: %v", err)
			} else {
				mode = &fm
			}
		}
	}
	return owner, mode
}

// misspelt reports whether a key of m that allowed does not hold is a
// misspelling of key (its unknown-key error already says so).
func misspelt(m *mapping, key string, allowed []string) bool {
	for _, k := range m.order {
		if !contains(allowed, k) && suggest(k, allowed) == key {
			return true
		}
	}
	return false
}

// fileStep decodes a file step: its path, content, mode and owner.
func (d *decoder) fileStep(m *mapping, st *state, where string) *File {
	f := &File{}
	pn := m.get("file")
	if v, ok := d.str(pn, st.sc, where, "file"); ok {
		switch {
		case v == "":
			d.errorf(pn, where, "file: empty path")
		case strings.ContainsRune(v, 0):
			d.errorf(pn, where, "file: path %q holds a NUL byte", v)
		case path.Clean(v) == "/":
			d.errorf(pn, where, "file: path %q is the root directory: name a file", v)
		case strings.HasSuffix(v, "/"):
			d.errorf(pn, where, "file: path %q ends in /: name the file, such as %sapp.conf", v, v)
		default:
			f.Path, _ = st.resolve(v)
		}
	} else {
		f.Path = v
	}
	// A missing content: is reported by step (see stepRequired).
	switch cn := d.node(m.get("content")); {
	case cn == nil:
	case cn.Kind != yaml.ScalarNode || cn.ShortTag() != "!!str":
		msg := fmt.Sprintf("content: expected a string, got %s", describe(cn))
		if cn.Kind == yaml.ScalarNode && cn.ShortTag() != "!!null" {
			msg += fmt.Sprintf(" (quote it: %q)", cn.Value)
		}
		d.errorf(cn, where, "%s", msg)
	default:
		f.Content, _ = d.expand(cn, cn.Value, st.sc, where)
	}
	f.Owner, f.Mode = d.ownerMode(m, st, where)
	return f
}

// copyTo decodes a copy's to: (tn) for its sources items.
func (d *decoder) copyTo(tn *yaml.Node, items []*yaml.Node, st *state, where string) string {
	v, ok := d.str(tn, st.sc, where, "to")
	switch {
	case !ok:
		return v
	case v == "":
		d.errorf(tn, where, "to: empty path")
		return ""
	}
	if path.Clean(v) == "." {
		v = "./" // the working dir, a directory (docker's COPY a.txt .)
	}
	to, _ := st.resolve(v)
	// A glob may match one file, which then becomes to: (docker's COPY
	// target/*.jar app.jar); one matching several is refused once matched.
	if !strings.HasSuffix(to, "/") && len(items) > 1 {
		d.errorf(tn, where, "to: with several sources the destination is a directory: end it with / (%s/)", v)
	}
	return to
}

// cleanSource cleans a copy source. From the build context it must be a
// relative path that stays inside; from a stage or image it is made
// absolute. A trailing slash is kept.
func cleanSource(p string, fromContext bool) (string, error) {
	if p == "" {
		return "", fmt.Errorf("empty source path")
	}
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("source %q holds a NUL byte", p)
	}
	if !fromContext {
		return cleanKeepSlash(path.Join("/", p) + trailingSlash(p)), nil
	}
	if path.IsAbs(p) {
		return "", fmt.Errorf("source %q is outside the build context: write it relative to the context (without the leading /)", p)
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("source %q is outside the build context (.. leaves it)", p)
	}
	if c != "." {
		c += trailingSlash(p)
	}
	return c, nil
}
