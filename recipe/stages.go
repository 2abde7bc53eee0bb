package recipe

import (
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// stages decodes both forms into r.Stages: pass 1 collects names and
// froms, pass 2 decodes each stage after the stage it is built from, so
// that it inherits that stage's env.
func (d *decoder) stages(r *Recipe, top *topLevel, context string) {
	m := top.m
	var srcs []*stageSource
	if m.has("stages") {
		for _, k := range []string{"from", "steps"} {
			if m.has(k) {
				d.errorf(m.keyNode(k), "", "top-level %s: cannot be combined with stages: (move it into a stage)", k)
			}
		}
		srcs = d.stageSources(m.get("stages"), top, context)
	} else {
		if !m.has("from") && !m.has("steps") {
			d.errorf(m.node, "", "want from: and steps:, or stages:")
			return
		}
		srcs = []*stageSource{{file: d.file, context: context, top: top, m: m, single: true, index: 0}}
		if !m.has("from") {
			d.errorf(m.node, "", "missing from: (write from: scratch for an empty base)")
		} else {
			srcs[0].from, srcs[0].fromOK = d.ref(m.get("from"), srcs[0], "", "from")
		}
	}
	if len(srcs) == 0 {
		return
	}
	r.Stages = make([]*Stage, len(srcs))
	finals := make([]*scope, len(srcs))
	state := make([]int, len(srcs)) // 0 new, 1 decoding, 2 done
	var visit func(i int)
	visit = func(i int) {
		if state[i] != 0 {
			return
		}
		state[i] = 1
		src := srcs[i]
		base := &scope{vars: map[string]value{}, open: true}
		switch {
		case !src.fromOK:
		case src.from.Kind == KindScratch:
			base.open = false
		case src.from.Kind == KindStage:
			p := src.from.Stage
			visit(p)
			if finals[p] != nil {
				base = finals[p]
			}
			if r.Stages[p] != nil {
				src.shell = r.Stages[p].Shell
			}
		}
		d.unresolved = nil
		r.Stages[i], finals[i] = d.decodeStage(src, base)
		state[i] = 2
	}
	for i := range srcs {
		visit(i)
	}
	d.checkCycles(r.Stages)
}

// stageSources is pass 1 of the multi-stage form: each stage's mapping,
// name and from:.
func (d *decoder) stageSources(n *yaml.Node, top *topLevel, context string) []*stageSource {
	n = d.node(n)
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "", "stages: expected a list of stages, got %s", describe(n))
		return nil
	}
	if len(n.Content) == 0 {
		d.errorf(n, "", "stages: empty list: want at least one stage")
		return nil
	}
	names := map[string]int{}
	var srcs []*stageSource
	for _, sn := range n.Content {
		where := fmt.Sprintf("stage %d", len(srcs)+1)
		sm := d.mapping(sn, where, "stage")
		if sm == nil {
			continue
		}
		src := &stageSource{file: d.file, context: context, top: top, m: sm, names: names, index: len(srcs)}
		if nn := sm.get("name"); nn != nil {
			if name, ok := d.scalar(nn, where, "name"); ok {
				switch prev, dup := names[name]; {
				case !stageNameRe.MatchString(name):
					d.errorf(nn, where, "bad stage name %q: want letters, digits, _ and -, starting with a letter or _", name)
				case name == "scratch":
					d.errorf(nn, where, "a stage cannot be named scratch")
				case dup:
					d.errorf(nn, where, "duplicate stage name %q (first at line %d)", name, srcs[prev].m.node.Line)
				default:
					names[name] = src.index
					src.name = name
				}
			}
		}
		srcs = append(srcs, src)
	}
	for _, src := range srcs {
		where := src.where()
		d.checkKeys(src.m, stageKeys, where, "")
		if !src.m.has("from") {
			d.errorf(src.m.node, where, "missing from: (write from: scratch for an empty base)")
			continue
		}
		src.from, src.fromOK = d.ref(src.m.get("from"), src, where, "from")
	}
	return srcs
}

// ref decodes a from: (of a stage or a copy). It expands args only: the
// base's env is not known before the base.
func (d *decoder) ref(n *yaml.Node, src *stageSource, where, what string) (Base, bool) {
	s, ok := d.str(n, src.top.argScope, where, what)
	if !ok {
		return Base{}, false
	}
	pos := d.pos(d.node(n))
	if !src.single {
		if i, ok := src.names[s]; ok {
			return Base{Kind: KindStage, Ref: s, Stage: i, Pos: pos}, true
		}
		if looksLikeStage(s) && s != "scratch" {
			msg := fmt.Sprintf("%s: unknown stage %q", what, s)
			names := sortedCopy(mapKeys(src.names))
			if sug := suggest(s, names); sug != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", sug)
			} else if len(names) > 0 {
				msg += " (stages: " + strings.Join(names, ", ") + ")"
			}
			msg += fmt.Sprintf("; for an image, write %q or %q", s+":latest", "docker.io/library/"+s)
			d.errorf(n, where, "%s", msg)
			return Base{}, false
		}
	}
	b, err := parseBase(s, src.context)
	if err != nil {
		d.errorf(n, where, "%s: %v", what, err)
		return Base{}, false
	}
	b.Pos = pos
	return b, true
}

// checkCycles reports every cycle between stages once, at the reference
// that closes it in its first stage.
func (d *decoder) checkCycles(stages []*Stage) {
	state := make([]int, len(stages))
	var stack []int
	seen := map[string]bool{}
	var visit func(i int)
	visit = func(i int) {
		state[i] = 1
		stack = append(stack, i)
		for _, j := range stages[i].DependsOn {
			switch state[j] {
			case 0:
				visit(j)
			case 1:
				k := len(stack) - 1
				for stack[k] != j {
					k--
				}
				cycle := append([]int(nil), stack[k:]...)
				// Rotate so the cycle starts at its first stage in the file.
				low := 0
				for x := range cycle {
					if cycle[x] < cycle[low] {
						low = x
					}
				}
				cycle = append(cycle[low:], cycle[:low]...)
				key := fmt.Sprint(cycle)
				if seen[key] {
					continue
				}
				seen[key] = true
				var names []string
				for _, c := range append(cycle, cycle[0]) {
					names = append(names, stages[c].Label())
				}
				first, next := stages[cycle[0]], cycle[(1)%len(cycle)]
				d.errorAt(first.refPos(next), first.where(), "stages form a cycle: %s", strings.Join(names, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = 2
	}
	for i := range stages {
		if stages[i] != nil && state[i] == 0 {
			visit(i)
		}
	}
}

// Label names a stage in messages: its name, else "stage N".
func (s *Stage) Label() string {
	if s.Name != "" {
		return s.Name
	}
	return fmt.Sprintf("stage %d", s.Index+1)
}

// where prefixes a stage's messages; "" for the single-image form.
func (s *Stage) where() string {
	if s.src != nil {
		return s.src.where()
	}
	if s.Name != "" {
		return fmt.Sprintf("stage %q", s.Name)
	}
	return ""
}

// refPos is the position of the first reference from s to stage j.
func (s *Stage) refPos(j int) Pos {
	if s.From.Kind == KindStage && s.From.Stage == j {
		return s.From.Pos
	}
	for _, st := range s.Steps {
		if st.Copy != nil && st.Copy.From != nil && st.Copy.From.Kind == KindStage && st.Copy.From.Stage == j {
			return st.Copy.From.Pos
		}
	}
	return s.Pos
}

// Stage returns the stage named name, or nil. The single-image form's
// stage is named "".
func (r *Recipe) Stage(name string) *Stage {
	for _, s := range r.Stages {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Needed returns the stages needed to build target, each once, every
// stage after the stages it depends on, target last. An empty target is
// the last stage (the image).
func (r *Recipe) Needed(target string) ([]*Stage, error) {
	if len(r.Stages) == 0 {
		return nil, fmt.Errorf("recipe has no stages")
	}
	t := r.Stages[len(r.Stages)-1]
	if target != "" {
		if t = r.Stage(target); t == nil {
			var names []string
			for _, s := range r.Stages {
				if s.Name != "" {
					names = append(names, s.Name)
				}
			}
			msg := fmt.Sprintf("unknown target stage %q", target)
			if sug := suggest(target, names); sug != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", sug)
			} else if len(names) > 0 {
				msg += " (stages: " + strings.Join(names, ", ") + ")"
			} else {
				msg += " (the recipe has no named stages)"
			}
			return nil, fmt.Errorf("%s", msg)
		}
	}
	state := make([]int, len(r.Stages))
	var out []*Stage
	var visit func(s *Stage) error
	visit = func(s *Stage) error {
		switch state[s.Index] {
		case 1:
			return fmt.Errorf("stages form a cycle through %s", s.Label())
		case 2:
			return nil
		}
		state[s.Index] = 1
		for _, j := range s.DependsOn {
			if j < 0 || j >= len(r.Stages) {
				return fmt.Errorf("stage %s depends on stage index %d, out of range", s.Label(), j)
			}
			if err := visit(r.Stages[j]); err != nil {
				return err
			}
		}
		state[s.Index] = 2
		out = append(out, s)
		return nil
	}
	if err := visit(t); err != nil {
		return nil, err
	}
	return out, nil
}

func sortedUnique(xs []int) []int {
	sort.Ints(xs)
	out := xs[:0]
	for i, x := range xs {
		if i == 0 || x != xs[i-1] {
			out = append(out, x)
		}
	}
	return out
}
