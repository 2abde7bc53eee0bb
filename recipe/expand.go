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

// scope is the variables visible to a ${NAME}. It is copied, never shared,
// when extended.
type scope struct {
	vars map[string]value
	// open: a name not in vars may come from the base image's env, so it
	// is deferred rather than an error.
	open bool
	// unsetArgs are args declared without a value, for a better message.
	unsetArgs map[string]bool
}

func (s *scope) clone() *scope {
	c := &scope{vars: make(map[string]value, len(s.vars)), open: s.open, unsetArgs: s.unsetArgs}
	for k, v := range s.vars {
		c.vars[k] = v
	}
	return c
}

// set returns a copy of s with vars set.
func (s *scope) set(vars []EnvVar, known []bool) *scope {
	c := s.clone()
	for i, v := range vars {
		c.vars[v.Name] = value{s: v.Value, known: known[i]}
	}
	return c
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
		v, found := sc.vars[name]
		switch {
		case found && v.known:
			b.WriteString(v.s)
		case found || sc.open:
			deferred = true
			d.unresolved = append(d.unresolved, Var{Name: name, Pos: pos})
			if !found {
				if s := suggest(name, sortedCopy(mapKeys(sc.vars))); s != "" {
					d.warnings = append(d.warnings, Warning{Pos: pos, Msg: fmt.Sprintf("${%s} is not defined in args or env, so it must come from the base image's env (did you mean ${%s}?)", name, s)})
				}
			}
		case sc.unsetArgs[name]:
			d.errorAt(pos, where, "arg %s has no value: give it a default in args or pass --build-arg %s=VALUE", name, name)
			ok = false
		default:
			msg := fmt.Sprintf("undefined variable ${%s}", name)
			if s := suggest(name, sortedCopy(mapKeys(sc.vars))); s != "" {
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
	return d.expand(d.node(n), s, sc, where)
}
