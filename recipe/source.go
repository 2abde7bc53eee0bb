package recipe

import (
	"fmt"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
)

// stageSource is what a Stage was decoded from, kept so that Expand can
// decode it again once the base image's env is known.
type stageSource struct {
	file, context string
	top           *topLevel
	// m is the stage's mapping; for the single-image form, the recipe's.
	m      *mapping
	single bool
	index  int
	name   string
	names  map[string]int
	from   Base
	fromOK bool
	// shell is the shell of the stage it continues (from: a stage),
	// set once that stage is decoded; nil otherwise.
	shell []string
}

// continues reports whether the stage is built on another stage, whose
// final state (env, working dir, user, shell) it starts from.
func (src *stageSource) continues() bool { return src.fromOK && src.from.Kind == KindStage }

func (src *stageSource) where() string {
	switch {
	case src.single:
		return ""
	case src.name != "":
		return fmt.Sprintf("stage %q", src.name)
	}
	return fmt.Sprintf("stage %d", src.index+1)
}

// inherited returns the stage's own value of key, else the top-level one
// (multi-stage form), with the prefix of its messages: a top-level value
// is reported once, not once per stage. A stage continuing another takes
// no top-level env, workdir, user or shell: it starts from that stage's,
// which has them, as docker's FROM stage starts from the stage's config.
func (src *stageSource) inherited(key string) (*yaml.Node, string) {
	if n := src.m.get(key); n != nil || src.single {
		return n, src.where()
	}
	if src.continues() && key != "platform" {
		return nil, ""
	}
	return src.top.m.get(key), ""
}

// state is what the steps of a stage see as they are decoded in order.
type state struct {
	sc *scope
	// wd is the working directory in effect ("" = the base image's, taken
	// as "/" for resolving relative paths); wdOK is false while it holds
	// unexpanded text.
	wd   string
	wdOK bool
}

// resolve makes p absolute against the working directory the recipe set,
// keeping a trailing slash. While the base image's working directory is in
// effect (the recipe set none yet) a relative p stays relative, cleaned:
// the build resolves it against the base's WorkingDir, as docker does. ok
// is false if the working directory holds unexpanded text.
func (st *state) resolve(p string) (string, bool) {
	if path.IsAbs(p) {
		return cleanKeepSlash(p), true
	}
	if !st.wdOK {
		return p, false
	}
	if st.wd == "" {
		return cleanKeepSlash(p), true
	}
	return cleanKeepSlash(path.Join(st.wd, p) + trailingSlash(p)), true
}

func trailingSlash(p string) string {
	if strings.HasSuffix(p, "/") {
		return "/"
	}
	return ""
}

// cleanKeepSlash cleans p, keeping one trailing slash if it had one.
func cleanKeepSlash(p string) string {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && !strings.HasSuffix(c, "/") {
		c += "/"
	}
	return c
}

// decodeStage is pass 2: it decodes a stage over base, the scope of its
// base image's env. It returns the stage and the scope its steps end with.
func (d *decoder) decodeStage(src *stageSource, base *scope) (*Stage, *scope) {
	s := &Stage{Name: src.name, Index: src.index, Pos: d.pos(src.m.node), src: src}
	if src.shell != nil {
		s.Shell = src.shell
	}
	where := src.where()
	if src.fromOK {
		s.From = src.from
	} else {
		s.From = Base{Stage: -1}
	}
	if n, where := src.inherited("platform"); n != nil {
		if v, ok := d.str(n, src.top.argScope, where, "platform"); ok {
			p, err := ParsePlatform(v)
			if err != nil {
				d.errorf(n, where, "platform: %v", err)
			}
			s.Platform, s.PlatformPos = p, d.pos(n)
		}
	}
	// Args over the base's env; then the top-level env, then the stage's.
	sc := base.clone()
	for k, v := range src.top.argScope.clone().vars {
		sc.vars[k] = v
	}
	sc.unsetArgs = src.top.argScope.unsetArgs
	envNodes, envWhere := []*yaml.Node{src.m.get("env")}, []string{where}
	if !src.single && !src.continues() {
		envNodes, envWhere = []*yaml.Node{src.top.m.get("env"), src.m.get("env")}, []string{"", where}
	}
	for i, n := range envNodes {
		if n == nil {
			continue
		}
		vars, known := d.env(n, sc, envWhere[i], "env")
		sc = sc.set(vars, known)
		s.Env = MergeEnv(s.Env, vars)
	}
	st := &state{sc: sc, wdOK: true}
	if n, where := src.inherited("workdir"); n != nil {
		if v, ok := d.str(n, sc, where, "workdir"); ok {
			s.Workdir, _ = st.resolve(v)
			s.Workdir = strings.TrimSuffix(s.Workdir, "/")
			if s.Workdir == "" {
				s.Workdir = "/"
			}
			if path.IsAbs(s.Workdir) {
				st.wd = s.Workdir
			}
		} else {
			s.Workdir, st.wdOK = v, false
		}
	}
	if n, where := src.inherited("user"); n != nil {
		s.User = d.user(n, sc, where)
	}
	if n, where := src.inherited("shell"); n != nil {
		if items, ok := d.scalarList(n, where, "shell", false); ok {
			if len(items) == 0 {
				d.errorf(n, where, "shell: empty list: want a program and its arguments, such as [/bin/sh, -c]")
			} else {
				s.Shell = d.strs(items, sc, where, "shell")
			}
		}
	}
	if n := src.m.get("steps"); n != nil {
		d.steps(n, s, st, where)
	}
	deps := []int{}
	if s.From.Kind == KindStage {
		deps = append(deps, s.From.Stage)
	}
	for _, step := range s.Steps {
		if step.Copy != nil && step.Copy.From != nil && step.Copy.From.Kind == KindStage {
			deps = append(deps, step.Copy.From.Stage)
		}
	}
	s.DependsOn = sortedUnique(deps)
	s.Unresolved = d.unresolved
	d.unresolved = nil
	return s, st.sc
}

// MergeEnv sets vars over env, as docker's ENV does: a variable already
// present takes the new value in place, a new one is appended. It is the
// one way strata merges environments (recipe env, env steps, base images).
func MergeEnv(env, vars []EnvVar) []EnvVar {
	out := append([]EnvVar(nil), env...)
	at := make(map[string]int, len(out)+len(vars))
	for i, v := range out {
		at[v.Name] = i
	}
	for _, v := range vars {
		if i, ok := at[v.Name]; ok {
			out[i].Value = v.Value
			continue
		}
		at[v.Name] = len(out)
		out = append(out, v)
	}
	return out
}

// strs expands a list of scalars.
func (d *decoder) strs(items []*yaml.Node, sc *scope, where, what string) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		v, _ := d.expand(it, it.Value, sc, where)
		out = append(out, v)
	}
	return out
}

// user decodes and checks a user value.
func (d *decoder) user(n *yaml.Node, sc *scope, where string) string {
	v, ok := d.str(n, sc, where, "user")
	if ok {
		if err := checkUser(v); err != nil {
			d.errorf(n, where, "user: %v", err)
		}
	}
	return v
}

// env decodes an env mapping; each value sees sc (the variables before the
// mapping). known[i] is false when vars[i] holds unexpanded text.
func (d *decoder) env(n *yaml.Node, sc *scope, where, what string) (vars []EnvVar, known []bool) {
	m := d.mapping(n, where, what)
	if m == nil {
		return nil, nil
	}
	for _, k := range m.order {
		f := m.fields[k]
		if k == "" || strings.ContainsAny(k, "= \t\n\x00") {
			d.errorf(f.key, where, "%s: bad variable name %q", what, k)
			continue
		}
		v := d.node(f.val)
		if v == nil {
			continue
		}
		val, ok := "", true
		if v.ShortTag() != "!!null" {
			s, sok := d.scalar(v, where, what+": "+k)
			if !sok {
				continue
			}
			d.warnBare(v, s, sc, where, what+": "+k, k)
			val, ok = d.expand(v, s, sc, where)
		}
		vars = append(vars, EnvVar{Name: k, Value: val})
		known = append(known, ok)
	}
	return vars, known
}

// Expand returns a copy of s with every ${NAME} expanded; baseEnv is the
// env of the stage's base image, as NAME=VALUE entries (an OCI config's
// Env; for a stage built on another stage, that stage's resulting env).
// The error is an ErrorList positioned at each name still undefined, or
// at a value that turns out invalid once expanded. A stage with no
// Unresolved names is returned as is (copied).
func (s *Stage) Expand(baseEnv []string) (*Stage, error) {
	if s.src == nil || len(s.Unresolved) == 0 {
		c := *s
		return &c, nil
	}
	sc := &scope{vars: map[string]value{}}
	for _, kv := range baseEnv {
		k, v, _ := strings.Cut(kv, "=")
		sc.vars[k] = value{s: v, known: true}
	}
	d := &decoder{file: s.src.file}
	out, _ := d.decodeStage(s.src, sc)
	if err := d.errs.Err(); err != nil {
		return nil, err
	}
	out.Unresolved = nil
	return out, nil
}

// ParseEnv reads an image config's KEY=VALUE list.
func ParseEnv(kvs []string) []EnvVar {
	out := make([]EnvVar, 0, len(kvs))
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		out = append(out, EnvVar{Name: k, Value: v})
	}
	return out
}
