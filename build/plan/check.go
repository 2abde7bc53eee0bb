package plan

import (
	"errors"
	"fmt"

	"github.com/stratabuild/strata/internal/fscopy"
	"github.com/stratabuild/strata/recipe"
)

// PullError is a base or copy source that could not be resolved: the
// registry or the file is the problem, not the recipe.
type PullError struct {
	Ref string
	Err error
}

func (e *PullError) Error() string { return e.Err.Error() }
func (e *PullError) Unwrap() error { return e.Err }

// CheckContext reports every copy from the build context whose sources
// are missing, excluded, or leave the context, and a bad ignore file,
// each at its step's position. It reads the context only: validate calls
// it, and a build before anything else.
func CheckContext(r *recipe.Recipe) error {
	ignore, err := fscopy.LoadIgnore(r.Context)
	if err != nil {
		return err
	}
	var errs []error
	for _, st := range r.Stages {
		for _, step := range st.Steps {
			if c := step.Copy; c != nil && c.From == nil {
				if _, err := fscopy.ContextInputs(r.Context, ignore, c.Sources); err != nil {
					errs = append(errs, at(step.Pos.String(), err))
				}
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
