package cli

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"
)

func newValidate() *cobra.Command {
	var file string
	var buildArgs []string
	cmd := &cobra.Command{
		Use:   "validate [-f FILE] [CONTEXT]",
		Short: "Check a recipe; print every error; exit 2 if any",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			context := "."
			if len(args) == 1 {
				context = args[0]
			}
			if file == "" {
				file = filepath.Join(context, "strata.yaml")
			}
			ba, err := parseBuildArgs(buildArgs)
			if err != nil {
				return usageErr("%v", err)
			}
			r, err := loadRecipe(cmd, file, context, ba)
			if err != nil {
				return err
			}
			steps := 0
			for _, s := range r.Stages {
				steps += len(s.Steps)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: ok (%d stages, %d steps)\n", file, len(r.Stages), steps)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "recipe `FILE` (default CONTEXT/strata.yaml)")
	cmd.Flags().StringArrayVar(&buildArgs, "build-arg", nil, "`NAME=VALUE` overriding an arg of the recipe (repeatable)")
	return cmd
}
