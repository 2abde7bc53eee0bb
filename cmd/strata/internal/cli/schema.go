package cli

import (
	"github.com/spf13/cobra"

	"github.com/stratabuild/strata/recipe"
)

func newSchema() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of strata.yaml (for editors)",
		Long: `Print the JSON Schema (draft 2020-12) of strata.yaml, generated from the
recipe loader's own definitions. Save it and name it in a recipe's first line
for the YAML language server (VS Code, Neovim, JetBrains, Helix):

  strata schema > strata.schema.json
  # yaml-language-server: $schema=./strata.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(recipe.Schema())
			return err
		},
	}
}
