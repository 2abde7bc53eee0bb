package recipe

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// value is a variable's value; known is false when it depends on the base
// image's env, not yet known (raw then holds its unexpanded text).
type value struct {
	s     string
	known bool
}

// scope is the variables visible to a ${NAME}. It is never changed once
// shared: set returns a new scope. Setting a variable costs O(log n), not
// a copy of every variable, so that a stage threading its scope through
// thousands of env steps stays linear-ish (copying every variable made
// 20,000 env steps take 7.5 s).
type scope struct {
	// vars are the variables the scope was made with: written only while
	// it is being made (a literal or a clone), never after set.
	vars map[string]value
	// added are the variables set since, over vars; nAdded counts the
	// sets (a bound on its size).
	added  *trie
	nAdded int
	// open: a name not in the scope may come from the base image's env, so it
	// is deferred rather than an error.
	open bool
	// unsetArgs are args declared without a value, for a better message.
	unsetArgs map[string]bool
}

// clone returns a copy of s whose vars may be written.
func (s *scope) clone() *scope {
	c := &scope{vars: make(map[string]value, len(s.vars)+s.nAdded), open: s.open, unsetArgs: s.unsetArgs}
	for k, v := range s.vars {
		c.vars[k] = v
	}
	s.added.each(func(e trieEntry) { c.vars[e.name] = e.v })
	return c
}

// set returns a copy of s with vars set; s is left as it was.
func (s *scope) set(vars []EnvVar, known []bool) *scope {
	c := *s
	for i, v := range vars {
		c.added = c.added.with(nameHash(v.Name), 0, trieEntry{name: v.Name, v: value{s: v.Value, known: known[i]}})
		c.nAdded++
	}
	return &c
}

// lookup returns the value of the variable name.
func (s *scope) lookup(name string) (value, bool) {
	if v, ok := s.added.get(nameHash(name), name); ok {
		return v, true
	}
	v, ok := s.vars[name]
	return v, ok
}

// each calls fn for every variable name, a name set twice maybe twice.
func (s *scope) each(fn func(name string)) {
	for k := range s.vars {
		fn(k)
	}
	s.added.each(func(e trieEntry) { fn(e.name) })
}

// maxSuggestWork bounds the names one decode compares for "did you mean"
// hints about unknown variables: past it (thousands of variables and
// thousands of unknown names) names are reported without a hint rather
// than in quadratic time.
const maxSuggestWork = 1 << 20

// suggestVar returns the variable of sc whose name is closest to name, if
// close enough to be a typo and the work budget allows; else "".
func (d *decoder) suggestVar(name string, sc *scope) string {
	n := len(sc.vars) + sc.nAdded
	if d.suggestWork+n > maxSuggestWork {
		return ""
	}
	d.suggestWork += n
	// The closest name, the first in order among equals, as suggest would
	// pick from the sorted names; a name longer or shorter by more than
	// suggest's limit of 2 edits cannot be it.
	best, bestDist := "", 0
	sc.each(func(c string) {
		if diff := len(c) - len(name); diff > 2 || diff < -2 {
			return
		}
		dist := editDistance(name, c)
		if best == "" || dist < bestDist || dist == bestDist && c < best {
			best, bestDist = c, dist
		}
	})
	if best == "" {
		return ""
	}
	return suggest(name, []string{best})
}

// trie is a persistent hash trie from variable names to values: with
// copies only the path to the leaf it changes and shares the rest, so the
// old trie stays valid. A leaf holds the entries of one 64-bit hash; an
// inner node has trieFan children, indexed by the next trieBits bits of
// the hash. The nil *trie is empty.
type trie struct {
	kids    *[trieFan]*trie // nil for a leaf
	hash    uint64          // a leaf's
	entries []trieEntry     // a leaf's
}

type trieEntry struct {
	name string
	v    value
}

const (
	trieBits = 5
	trieFan  = 1 << trieBits
)

// nameHash is FNV-1a: deterministic, and fast on short names.
func nameHash(name string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * 1099511628211
	}
	return h
}

// get returns the value of name, whose hash is h.
func (t *trie) get(h uint64, name string) (value, bool) {
	for shift := uint(0); t != nil; shift += trieBits {
		if t.kids == nil {
			for _, e := range t.entries {
				if t.hash == h && e.name == name {
					return e.v, true
				}
			}
			return value{}, false
		}
		t = t.kids[(h>>shift)&(trieFan-1)]
	}
	return value{}, false
}

// with returns t with e set; h is e's hash, shift the bits t's level has
// already used. Two different hashes differ in a bit below 64, so leaves
// of different hashes always part within 13 levels.
func (t *trie) with(h uint64, shift uint, e trieEntry) *trie {
	switch {
	case t == nil:
		return &trie{hash: h, entries: []trieEntry{e}}
	case t.kids == nil && t.hash == h:
		entries := make([]trieEntry, 0, len(t.entries)+1)
		for _, old := range t.entries {
			if old.name != e.name {
				entries = append(entries, old)
			}
		}
		return &trie{hash: h, entries: append(entries, e)}
	case t.kids == nil:
		// A leaf of another hash moves one level down, beside e.
		n := &trie{kids: new([trieFan]*trie)}
		n.kids[(t.hash>>shift)&(trieFan-1)] = t
		return n.with(h, shift, e)
	}
	kids := *t.kids
	i := (h >> shift) & (trieFan - 1)
	kids[i] = kids[i].with(h, shift+trieBits, e)
	return &trie{kids: &kids}
}

// each calls fn for every entry of t, in no particular order.
func (t *trie) each(fn func(trieEntry)) {
	switch {
	case t == nil:
	case t.kids == nil:
		for _, e := range t.entries {
			fn(e)
		}
	default:
		for _, k := range t.kids {
			k.each(fn)
		}
	}
}

func isNameStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isNameChar(c byte) bool  { return isNameStart(c) || c >= '0' && c <= '9' }

// refPos is the position of byte off of a scalar's text, exact for
// single-line plain and quoted scalars, the scalar's position otherwise.
func (d *decoder) refPos(n *yaml.Node, text string, off int) Pos {
	p := d.pos(n)
	if strings.Contains(text[:off], "\n") {
		return p
	}
	switch n.Style {
	case 0, yaml.FlowStyle, yaml.TaggedStyle:
		p.Col += off
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		p.Col += off + 1
	}
	return p
}

// warnBare warns of a $NAME without braces in text, the value of scalar n
// in a field no shell reads (an env value, a workdir, a path), where it
// is most likely meant expanded: strata keeps it as it is, where docker's
// ENV, WORKDIR, USER, COPY and LABEL expand it — PATH: "/opt/bin:$PATH"
// would set PATH to that text. Most likely: the name is self, the env
// variable the value is for (PATH extended), or one the recipe defines
// in sc (args, env). A name it does not define may be meant literally
// (docker's ENV A=\$HOME, as strata convert writes it): not warned of.
func (d *decoder) warnBare(n *yaml.Node, text string, sc *scope, where, what, self string) {
	for _, ref := range bareRefs(text) {
		if _, defined := sc.lookup(ref.name); ref.name != self && !defined {
			continue
		}
		d.warnings = append(d.warnings, Warning{Pos: d.refPos(n, text, ref.off), Msg: fmt.Sprintf(
			"%s: $%s is kept as it is: strata expands ${NAME} only (docker expands $%s here); write ${%s}", what, ref.name, ref.name, ref.name)})
		return
	}
}

// bareRef is a $NAME without braces at offset off of a text.
type bareRef struct {
	name string
	off  int
}

// bareRefs lists the $NAMEs without braces in text ($$ is no reference).
func bareRefs(text string) []bareRef {
	var out []bareRef
	for i := 0; i+1 < len(text); i++ {
		switch {
		case text[i] != '$':
		case text[i+1] == '$':
			i++ // $${
		case isNameStart(text[i+1]):
			j := i + 1
			for j < len(text) && isNameChar(text[j]) {
				j++
			}
			out = append(out, bareRef{name: text[i+1 : j], off: i})
			i = j - 1
		}
	}
	return out
}

// BareNames lists the names of the $NAMEs without braces in text, which
// strata keeps as they are (only ${NAME} is expanded; $$ is no reference).
func BareNames(text string) []string {
	var out []string
	for _, ref := range bareRefs(text) {
		out = append(out, ref.name)
	}
	return out
}

// expand expands ${NAME} in text, the value of scalar n. It returns the
// expanded text and true; or, when a name is unknown yet (see scope.open),
// the raw text and false after recording the name in d.unresolved; or
// false after recording an error.
func (d *decoder) expand(n *yaml.Node, text string, sc *scope, where string) (string, bool) {
	if !strings.Contains(text, "$") {
		return text, true
	}
	var b strings.Builder
	ok, deferred := true, false
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case strings.HasPrefix(text[i:], "$${"):
			b.WriteString("${")
			i += 3
			continue
		case c != '$' || !strings.HasPrefix(text[i:], "${"):
			b.WriteByte(c)
			i++
			continue
		}
		end := strings.IndexByte(text[i:], '}')
		if end < 0 {
			d.errorAt(d.refPos(n, text, i), where, "unterminated ${ (write $${ for a literal ${)")
			return text, false
		}
		name := text[i+2 : i+end]
		pos := d.refPos(n, text, i)
		i += end + 1
		if name == "" || !isNameStart(name[0]) || strings.IndexFunc(name, func(r rune) bool { return r > 127 || !isNameChar(byte(r)) }) >= 0 {
			d.errorAt(pos, where, "bad variable reference ${%s}: want ${NAME}, NAME being letters, digits and _ (write $${ for a literal ${)", name)
			ok = false
			continue
		}
		v, found := sc.lookup(name)
		switch {
		case found && v.known:
			b.WriteString(v.s)
		case found || sc.open:
			deferred = true
			d.unresolved = append(d.unresolved, Var{Name: name, Pos: pos})
			if !found {
				if s := d.suggestVar(name, sc); s != "" {
					d.warnings = append(d.warnings, Warning{Pos: pos, BaseEnv: true, Msg: fmt.Sprintf("${%s} is not defined in args or env, so it must come from the base image's env (did you mean ${%s}?)", name, s)})
				}
			}
		case sc.unsetArgs[name]:
			d.errorAt(pos, where, "arg %s has no value: give it a default in args or pass --build-arg %s=VALUE", name, name)
			ok = false
		default:
			msg := fmt.Sprintf("undefined variable ${%s}", name)
			if s := d.suggestVar(name, sc); s != "" {
				msg += fmt.Sprintf(" (did you mean ${%s}?)", s)
			}
			msg += "; define it in args or env, or write $${" + name + "} for a literal ${" + name + "}"
			d.errorAt(pos, where, "%s", msg)
			ok = false
		}
	}
	if !ok || deferred {
		return text, false
	}
	return b.String(), true
}

// str decodes scalar n and expands it.
func (d *decoder) str(n *yaml.Node, sc *scope, where, what string) (string, bool) {
	s, ok := d.scalar(n, where, what)
	if !ok {
		return "", false
	}
	if noShell[what] {
		d.warnBare(d.node(n), s, sc, where, what, "")
	}
	return d.expand(d.node(n), s, sc, where)
}

// noShell are the fields str decodes that no shell reads (see warnBare).
var noShell = map[string]bool{"workdir": true, "user": true, "to": true, "owner": true, "file": true}
