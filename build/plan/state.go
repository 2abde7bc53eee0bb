package plan

import (
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/stratabuild/strata/recipe"
)

// State is what steps see and the image config keeps: the one place
// strata tracks env, working dir, user and shell. It starts from the base
// image's config, takes the recipe's stage settings, then each env,
// workdir and user step; run, copy and file steps and the image config all
// read it.
type State struct {
	Env     []recipe.EnvVar
	Workdir string // absolute; "" is "/" (an unset WorkingDir)
	User    string
	Shell   []string
}

// stateOf is the state an image's config gives.
func stateOf(c v1.Config) State {
	return State{Env: recipe.ParseEnv(c.Env), Workdir: c.WorkingDir, User: c.User, Shell: c.Shell}
}

// withStage applies a stage's own env, workdir, user and shell.
func (s State) withStage(st *recipe.Stage) State {
	s.Env = recipe.MergeEnv(s.Env, st.Env)
	if st.Workdir != "" {
		s.Workdir = path.Clean(s.Abs(st.Workdir))
	}
	if st.User != "" {
		s.User = st.User
	}
	if st.Shell != nil { // else the base image's (docker's SHELL)
		s.Shell = st.Shell
	}
	return s
}

// apply applies a metadata step; other steps leave the state as it is.
func (s State) apply(step *recipe.Step) State {
	switch step.Kind {
	case recipe.EnvStep:
		s.Env = recipe.MergeEnv(s.Env, step.Env)
	case recipe.WorkdirStep:
		s.Workdir = path.Clean(s.Abs(step.Workdir))
	case recipe.UserStep:
		s.User = step.User
	}
	return s
}

// Abs resolves p against the working dir, as docker resolves a relative
// WORKDIR or COPY destination; a trailing "/" is kept.
func (s State) Abs(p string) string {
	if !path.IsAbs(p) {
		p = path.Join("/", s.Workdir, p) + trailing(p)
	}
	c := path.Clean(p)
	if c != "/" {
		c += trailing(p)
	}
	return c
}

func trailing(p string) string {
	if strings.HasSuffix(p, "/") {
		return "/"
	}
	return ""
}

// Cwd is the working dir a process starts in.
func (s State) Cwd() string {
	if s.Workdir == "" {
		return "/"
	}
	return s.Workdir
}

// Environ is the env as KEY=VALUE, with vars (a run step's own) over it.
func (s State) Environ(vars ...recipe.EnvVar) []string {
	env := recipe.MergeEnv(s.Env, vars)
	out := make([]string, len(env))
	for i, e := range env {
		out[i] = e.String()
	}
	return out
}
