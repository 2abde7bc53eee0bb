package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/internal/emulation"
	"github.com/stratabuild/strata/recipe"
)

// Fingerprint identifies what a stage builds: the recipe's stage, its
// platform, its base, and every step as the cache sees it and as the
// history names it. Two platforms' plans of a stage that does not depend
// on the target platform have the same one. It is made once per stage,
// when the plan is made: a stage's is made of those it depends on.
func (p *Plan) Fingerprint(sp *Stage) string {
	if sp.fingerprint == "" {
		sp.fingerprint = p.fingerprint(sp)
	}
	return sp.fingerprint
}

func (p *Plan) fingerprint(sp *Stage) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\x00%s\x00%s\x00", sp.Recipe.Index, sp.Platform.String(), sp.BaseDigest)
	if sp.BaseStage >= 0 {
		if base, ok := p.StageByIndex(sp.BaseStage); ok {
			fmt.Fprintf(h, "stage %s\x00", p.Fingerprint(base))
		}
	}
	for _, s := range sp.Steps {
		data, _ := json.Marshal(struct {
			Def       any
			State     State
			Files     map[string]string
			Pos, Name string
		}{s.Def, s.State, s.Files, s.Pos, s.Recipe.Name})
		h.Write(data)
		if s.From != nil && s.From.Stage >= 0 {
			if src, ok := p.StageByIndex(s.From.Stage); ok {
				fmt.Fprintf(h, "from %s\x00", p.Fingerprint(src))
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// checkEmulation makes sure, before anything runs, that every stage with a
// run step can run its platform's binaries here.
func checkEmulation(plans []*Plan) error {
	seen := map[string]bool{}
	var errs []error
	for _, p := range plans {
		for _, sp := range p.Stages {
			arch := sp.Platform.Architecture
			if seen[arch] || !slices.ContainsFunc(sp.Steps, func(s *Step) bool { return s.Recipe.Kind == recipe.RunStep }) {
				continue
			}
			seen[arch] = true
			errs = append(errs, emulation.Check(arch))
		}
	}
	return errors.Join(errs...)
}

// Inputs are what determine the step's result, for its cache key: parent
// is the diffIDs of the layers below it, from those of the stage it copies
// from (if it does), args the recipe's (to explain misses).
func (s *Step) Inputs(sp *Stage, parent, from []string, args map[string]string) (*cache.Inputs, error) {
	def := s.Def
	if from != nil {
		def.From = "stage " + strings.Join(from, ",")
	}
	data, err := json.Marshal(def)
	if err != nil {
		return nil, err
	}
	in := &cache.Inputs{
		StepID: fmt.Sprintf("%s:%s:%d", absPath(s.Recipe.Pos.File), sp.Recipe.Name, s.Recipe.Index),
		Parent: parent, Env: s.State.Environ(), User: s.State.User, Workdir: s.State.Workdir,
		Shell: s.State.Shell, Step: string(data), Files: s.Files, Args: args, Base: sp.BaseDigest,
	}
	if s.Recipe.Kind == recipe.CopyStep || s.Recipe.Kind == recipe.FileStep {
		// What a copy or file step writes does not depend on the env,
		// user or shell (it is owned by its owner:, else root, as
		// docker's COPY), nor on the working dir but through its
		// destination, which def holds resolved: a top-level env
		// change does not re-run a scratch stage's copies.
		in.Env, in.User, in.Workdir, in.Shell = nil, "", "", nil
	}
	return in, nil
}

// absPath names a recipe across builds: two projects' strata.yaml are two
// recipes.
func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}
