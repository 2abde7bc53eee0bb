package recipe

import (
	"fmt"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds the nodes a decode visits, aliases counted each time
// they are followed, so that an alias bomb cannot exhaust memory or time.
const maxNodes = 1 << 20

// decoder walks yaml.Nodes, collecting every problem in errs.
type decoder struct {
	file    string
	errs    ErrorList
	visited int
	tooBig  bool
	// unresolved collects the ${NAME}s deferred to Stage.Expand.
	unresolved []Var
	// warnings are problems that do not stop the build.
	warnings []Warning
	// suggestWork counts the names compared for hints (see suggestVar).
	suggestWork int
}

func (d *decoder) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: d.file}
	}
	return Pos{File: d.file, Line: n.Line, Col: n.Column}
}

// errorf records an error at n, prefixed by where (such as `step 3`).
func (d *decoder) errorf(n *yaml.Node, where, format string, args ...any) {
	d.errorAt(d.pos(n), where, format, args...)
}

func (d *decoder) errorAt(p Pos, where, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if where != "" {
		msg = where + ": " + msg
	}
	d.errs = append(d.errs, &Error{Pos: p, Msg: msg})
}

// node follows aliases and counts the visit; it returns nil once the
// budget is exhausted.
func (d *decoder) node(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return nil
	}
	d.visited++
	if d.visited > maxNodes {
		if !d.tooBig {
			d.tooBig = true
			d.errorf(n, "", "recipe too large (more than %d YAML nodes after expanding aliases)", maxNodes)
		}
		return nil
	}
	return n
}

// describe names a node's type for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean (" + n.Value + ")"
		case "!!int", "!!float":
			return "a number (" + n.Value + ")"
		case "!!timestamp":
			return "a date (" + n.Value + ")"
		case "!!str":
			return "a string"
		}
		return "a " + strings.TrimPrefix(n.ShortTag(), "!!") + " (" + n.Value + ")"
	}
	return "an unknown node"
}

// field is one key/value pair of a mapping.
type field struct {
	key, val *yaml.Node
}

// mapping holds the pairs of a mapping node by key, and in order.
type mapping struct {
	node   *yaml.Node
	fields map[string]field
	order  []string
}

func (m *mapping) has(key string) bool { _, ok := m.fields[key]; return ok }

// get returns the value of key, or nil.
func (m *mapping) get(key string) *yaml.Node {
	if m == nil {
		return nil
	}
	return m.fields[key].val
}

// key returns the key node of key, or the mapping node.
func (m *mapping) keyNode(key string) *yaml.Node {
	if f, ok := m.fields[key]; ok {
		return f.key
	}
	return m.node
}

// mapping decodes a mapping node; it reports a wrong type, non-scalar
// keys and duplicate keys. It returns nil if n is not a mapping.
func (d *decoder) mapping(n *yaml.Node, where, what string) *mapping {
	n = d.node(n)
	if n == nil {
		return nil
	}
	pre := ""
	if what != "" {
		pre = what + ": "
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, where, "%sexpected a mapping, got %s", pre, describe(n))
		return nil
	}
	m := &mapping{node: n, fields: map[string]field{}}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.node(n.Content[i]), n.Content[i+1]
		if k == nil {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, where, "%sa key must be a string, got %s", pre, describe(k))
			continue
		}
		if k.Tag == "!!merge" {
			d.errorf(k, where, "%smerge keys (<<) are not supported", pre)
			continue
		}
		if prev, dup := m.fields[k.Value]; dup {
			d.errorf(k, where, "%sduplicate key %q (first at line %d)", pre, k.Value, prev.key.Line)
			continue
		}
		m.fields[k.Value] = field{key: k, val: v}
		m.order = append(m.order, k.Value)
	}
	return m
}

// checkKeys reports every key of m not in allowed, suggesting the closest
// allowed key. It returns the unknown keys' suggestions.
func (d *decoder) checkKeys(m *mapping, allowed []string, where, what string) (suggested []string) {
	if m == nil {
		return nil
	}
	for _, k := range m.order {
		if contains(allowed, k) {
			continue
		}
		f := m.fields[k]
		msg := fmt.Sprintf("unknown key %q", k)
		if what != "" {
			msg = what + ": " + msg
		}
		if s := suggest(k, allowed); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
			suggested = append(suggested, s)
		} else {
			msg += " (want one of " + strings.Join(sortedCopy(allowed), ", ") + ")"
		}
		d.errorf(f.key, where, "%s", msg)
	}
	return suggested
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func sortedCopy(list []string) []string {
	c := append([]string(nil), list...)
	sort.Strings(c)
	return c
}

// scalar returns the text of a scalar node (any tag but null); it reports
// any other node as a wrong type.
func (d *decoder) scalar(n *yaml.Node, where, what string) (string, bool) {
	n = d.node(n)
	if n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		d.errorf(n, where, "%s: expected a string, got %s", what, describe(n))
		return "", false
	}
	return n.Value, true
}

// scalarList returns the scalars of a list node; with one, a single scalar
// is accepted as a list of one. Empty lists are allowed.
func (d *decoder) scalarList(n *yaml.Node, where, what string, one bool) ([]*yaml.Node, bool) {
	n = d.node(n)
	if n == nil {
		return nil, false
	}
	if one && n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null" {
		return []*yaml.Node{n}, true
	}
	if n.Kind != yaml.SequenceNode {
		want := "a list of strings"
		if one {
			want = "a string or a list of strings"
		}
		d.errorf(n, where, "%s: expected %s, got %s", what, want, describe(n))
		return nil, false
	}
	var out []*yaml.Node
	ok := true
	for _, item := range n.Content {
		item = d.node(item)
		if item == nil {
			ok = false
			continue
		}
		if item.Kind != yaml.ScalarNode || item.ShortTag() == "!!null" {
			d.errorf(item, where, "%s: expected a string in the list, got %s", what, describe(item))
			ok = false
			continue
		}
		out = append(out, item)
	}
	return out, ok
}
