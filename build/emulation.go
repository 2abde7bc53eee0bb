package build

import (
	"errors"

	"github.com/stratabuild/strata/build/plan"
	"github.com/stratabuild/strata/build/sandbox"
	"github.com/stratabuild/strata/recipe"
)

// checkEmulation makes sure, before anything runs, that every stage with
// a run step can run its platform's binaries here.
func checkEmulation(plans []*plan.Plan) error {
	seen := map[string]bool{}
	var errs []error
	for _, p := range plans {
		for _, sp := range p.Stages {
			arch := sp.Platform.Architecture
			if seen[arch] || !hasRun(sp) {
				continue
			}
			seen[arch] = true
			errs = append(errs, sandbox.CheckEmulation(arch))
		}
	}
	return errors.Join(errs...)
}

func hasRun(sp *plan.Stage) bool {
	for _, s := range sp.Steps {
		if s.Recipe.Kind == recipe.RunStep {
			return true
		}
	}
	return false
}
