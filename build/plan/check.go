package plan

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/stratabuild/strata/internal/fscopy"
	"github.com/stratabuild/strata/recipe"
)

// PullError is a base or copy source that could not be resolved: the
// registry or the file is the problem, not the recipe. Local says it is
// a file (a layout or an archive): one a build would not find either.
type PullError struct {
	Ref   string
	Local bool
	Err   error
}

func (e *PullError) Error() string { return e.Err.Error() }
func (e *PullError) Unwrap() error { return e.Err }

// CheckContext reports every copy of stages from the build context whose
// sources are missing, excluded, or leave the context, and a bad ignore
// file, each at its step's position. It reads the context only: validate
// calls it for every stage, and a build, before anything else, for the
// stages its target needs, leaving its state dir (stateRoot) out as the
// plan does. A source that names what only the base image's env defines
// (still "${NAME}" before the base is pulled) is left to the plan, which
// checks it once expanded.
func CheckContext(r *recipe.Recipe, stages []*recipe.Stage, stateRoot string) error {
	ignore, err := fscopy.LoadIgnore(r.Context)
	if err != nil {
		return err
	}
	if rel, ok := below(r.Context, stateRoot); ok { // as the plan leaves it out
		ignore = ignore.Without(rel)
	}
	var errs []error
	for _, st := range stages {
		for _, step := range st.Steps {
			c := step.Copy
			if c == nil || c.From != nil {
				continue
			}
			sources := c.Sources
			if len(st.Unresolved) > 0 {
				sources = slices.DeleteFunc(slices.Clone(sources), func(s string) bool { return strings.Contains(s, "${") })
			}
			if len(sources) == 0 {
				continue
			}
			dest := c.To // not checked when some sources are not known yet
			if len(sources) != len(c.Sources) {
				dest = ""
			}
			if _, _, err := fscopy.ContextInputs(r.Context, ignore, sources, dest); err != nil {
				errs = append(errs, at(step.Pos.String(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// at prefixes pos to each error joined in err.
func at(pos string, err error) error {
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return fmt.Errorf("%s: %w", pos, err)
	}
	var errs []error
	for _, e := range j.Unwrap() {
		errs = append(errs, at(pos, e))
	}
	return errors.Join(errs...)
}
