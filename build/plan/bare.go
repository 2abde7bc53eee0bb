package plan

import (
	"fmt"
	"slices"

	"github.com/stratabuild/strata/recipe"
)

// bareWarnings warns of each $NAME without braces, in a field of st no
// shell reads, that the base's env (base, the env the stage starts from)
// defines and the recipe does not (defined): strata keeps it as it is,
// where docker would expand it — workdir: $APP_HOME is /$APP_HOME here,
// the base's APP_HOME there. Names the recipe defines are warned of as it
// is loaded (recipe's warnBare), which cannot see a base's env.
func bareWarnings(st *recipe.Stage, base []recipe.EnvVar, defined map[string]bool) []string {
	inBase := func(name string) bool {
		return slices.ContainsFunc(base, func(v recipe.EnvVar) bool { return v.Name == name })
	}
	var out []string
	check := func(pos fmt.Stringer, what, text string) {
		for _, name := range recipe.BareNames(text) {
			if inBase(name) && !defined[name] {
				out = append(out, fmt.Sprintf("%s: %s: $%s is kept as it is: strata expands ${NAME} only, and the base image's env defines %s (docker would expand it); write ${%s}, or $${%s} for a literal reference",
					pos, what, name, name, name, name))
			}
		}
	}
	for _, v := range st.Env {
		check(st.Pos, "env: "+v.Name, v.Value)
	}
	check(st.Pos, "workdir", st.Workdir)
	check(st.Pos, "user", st.User)
	for _, s := range st.Steps {
		switch s.Kind {
		case recipe.EnvStep:
			for _, v := range s.Env {
				check(s.Pos, "env: "+v.Name, v.Value)
			}
		case recipe.WorkdirStep:
			check(s.Pos, "workdir", s.Workdir)
		case recipe.UserStep:
			check(s.Pos, "user", s.User)
		case recipe.CopyStep:
			check(s.Pos, "to", s.Copy.To)
			for _, src := range s.Copy.Sources {
				check(s.Pos, "copy", src)
			}
		case recipe.FileStep:
			check(s.Pos, "file", s.File.Path)
		case recipe.RunStep:
			for _, v := range s.Run.Env {
				check(s.Pos, "env: "+v.Name, v.Value)
			}
		}
	}
	return out
}

// argWarnings warns of each $NAME without braces in a run step's command
// whose NAME is one of the recipe's args and set in no env (the base's,
// the recipe's): the step's shell sees no args, so it is empty there,
// where docker's RUN has its ARGs in the environment. envs are the names
// the recipe's env sets (envNames).
func argWarnings(r *recipe.Recipe, st *recipe.Stage, base []recipe.EnvVar, envs map[string]bool) []string {
	inBase := func(name string) bool {
		return slices.ContainsFunc(base, func(v recipe.EnvVar) bool { return v.Name == name })
	}
	var out []string
	for _, s := range st.Steps {
		if s.Kind != recipe.RunStep || s.Run.Exec {
			continue
		}
		for _, name := range recipe.BareNames(s.Run.Command) {
			if !envs[name] && !inBase(name) && slices.ContainsFunc(r.Args, func(a recipe.Arg) bool { return a.Name == name }) {
				out = append(out, fmt.Sprintf("%s: run: $%s is empty in the step: %s is an arg, and args reach a run step only as strata expands ${%s} (docker's RUN has its ARGs in the environment); write ${%s}",
					s.Pos, name, name, name, name))
				break
			}
		}
	}
	return out
}

// Warnings are the warnings of plans (one per platform), each once.
func Warnings(plans []*Plan) []string {
	var out []string
	for _, p := range plans {
		for _, w := range p.Warnings {
			if !slices.Contains(out, w) {
				out = append(out, w)
			}
		}
	}
	return out
}

// definedNames are the names a recipe defines: its args, and every env
// it sets (top level, stages, env steps, run steps).
func definedNames(r *recipe.Recipe) map[string]bool {
	names := envNames(r)
	for _, a := range r.Args {
		names[a.Name] = true
	}
	return names
}

// envNames are the names of every env a recipe sets (top level, stages,
// env steps, run steps).
func envNames(r *recipe.Recipe) map[string]bool {
	names := map[string]bool{}
	for _, st := range r.Stages {
		for _, v := range st.Env {
			names[v.Name] = true
		}
		for _, s := range st.Steps {
			for _, v := range s.Env {
				names[v.Name] = true
			}
			if s.Run != nil {
				for _, v := range s.Run.Env {
					names[v.Name] = true
				}
			}
		}
	}
	return names
}
