package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/spf13/cobra"

	"github.com/stratabuild/strata/build/plan"
	"github.com/stratabuild/strata/commit"
)

func newValidate() *cobra.Command {
	var file string
	var buildArgs, insecure []string
	var offline bool
	cmd := &cobra.Command{
		Use:   "validate [-f FILE|-] [CONTEXT]",
		Short: "Check a recipe and its context; print every error; exit 2 if any",
		Long: `Check a recipe as a build would before running anything: the recipe
itself, every copy source in the build context, and — unless --offline —
the ${NAME}s that only a base image's env can define, by resolving the
bases' configs (a registry out of reach, or refusing the credentials, is a
warning; one that answers it has no such image is an error). Every
problem is printed as FILE:LINE:COL: message; the exit code is 2 if any.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkStdinContext(file, args); err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			context, file, explicit := recipeFile(args, file)
			ba, err := parseBuildArgs(buildArgs)
			if err != nil {
				return usageErr("%v", err)
			}
			r, err := loadRecipe(cmd, file, context, explicit, ba, offline)
			if err != nil {
				return err
			}
			p := &printer{w: cmd.ErrOrStderr(), seen: map[string]bool{}}
			p.print(plan.CheckContext(r, r.Stages, ""))
			if !offline {
				// Every platform of platforms:, as a build plans them.
				targets, err := plan.Targets(r, nil)
				if err == nil {
					var plans []*plan.Plan
					plans, err = plan.MakeAll(cmd.Context(), plan.Options{NoSecrets: true, NoEmulation: true, Registry: commit.RegistryOptions{Insecure: insecure}}, targets)
					for _, w := range plan.Warnings(plans) {
						fmt.Fprintf(cmd.ErrOrStderr(), "%s (warning)\n", w)
					}
				}
				if cmd.Context().Err() != nil { // ^C, a CI job's timeout: not an unreachable registry
					return &exitError{code: ExitBuildFailed, err: errors.New("interrupted: the recipe was not checked to the end")}
				}
				p.print(err)
			}
			stderr := cmd.ErrOrStderr()
			bad := p.bad
			if bad {
				return &exitError{code: ExitUsage, err: errors.New("invalid recipe"), printed: true}
			}
			steps := 0
			for _, s := range r.Stages {
				steps += len(s.Steps)
			}
			fmt.Fprintf(stderr, "%s: ok (%s, %s)\n", r.File, count(len(r.Stages), "stage"), count(steps, "step"))
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "recipe `FILE` (default CONTEXT/strata.yaml; - reads it from stdin, CONTEXT then required)")
	cmd.Flags().StringArrayVar(&buildArgs, "build-arg", nil, "`NAME=VALUE` overriding an arg of the recipe (repeatable)")
	cmd.Flags().BoolVar(&offline, "offline", false, "resolve no base image (names only their env defines are not checked)")
	cmd.Flags().StringArrayVar(&insecure, "insecure-registry", nil, "reach registry `HOST` over plain HTTP (repeatable)")
	return cmd
}

// printer prints each error joined in an error once, on its own line; a
// base a registry could not be asked about (out of reach, refusing the
// credentials) is a warning. bad says whether any was an error.
type printer struct {
	w    io.Writer
	seen map[string]bool
	bad  bool
}

func (p *printer) print(err error) {
	for _, e := range flatten(err) {
		msg := e.Error()
		if p.seen[msg] {
			continue
		}
		p.seen[msg] = true
		var pe *plan.PullError
		if errors.As(e, &pe) && !baseMissing(pe) { // a registry out of reach
			fmt.Fprintf(p.w, "%s (warning: names only its env defines were not checked)\n", msg)
			continue
		}
		fmt.Fprintln(p.w, msg)
		p.bad = true
	}
}

// baseMissing says whether a base that could not be pulled is not there
// to pull — the recipe names what does not exist, an error a build would
// stop at too: a layout or archive without it, a registry that answered
// it has no such repository, tag or manifest, or a base there that holds
// no image for the build (commit.ErrNoImage: an index without the
// platform, a manifest that does not parse). A registry out of reach or
// refusing the credentials may yet have it.
//
// A file that could not be read (permission denied, an I/O error) is not
// missing; nor is a host answering 404 to the registry API's ping (not a
// registry: a wrong port, a proxy).
func baseMissing(pe *plan.PullError) bool {
	var perr *fs.PathError
	if errors.Is(pe, commit.ErrNoImage) {
		return true
	}
	if pe.Local {
		return !errors.As(pe, &perr) || errors.Is(perr, fs.ErrNotExist)
	}
	return commit.ManifestNotFound(pe, pe.Ref)
}

// flatten lists the errors errors.Join (or an ErrorList) put together.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// count is "1 stage", "2 stages".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
