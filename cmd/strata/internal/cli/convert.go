package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/stratabuild/strata/internal/convert"
)

func newConvert() *cobra.Command {
	return &cobra.Command{
		Use:   "convert [DOCKERFILE]",
		Short: "Print an equivalent strata.yaml for a Dockerfile",
		Long: `Print an equivalent strata.yaml for a Dockerfile (default ./Dockerfile) on
stdout. What the recipe cannot carry is reported on stderr with its Dockerfile
line and left in the recipe as a comment.

Exit status: 0 when the recipe is written (warnings or not), 2 when the
Dockerfile cannot be read or parsed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := "Dockerfile"
			if len(args) == 1 {
				file = args[0]
			}
			src, err := os.ReadFile(file)
			if err != nil {
				return usageErr("reading the Dockerfile: %v", err)
			}
			res, err := convert.Convert(file, src)
			var pe *convert.ParseError
			switch {
			case errors.As(err, &pe):
				return usageErr("%v", pe)
			case err != nil:
				return &exitError{code: ExitBuildFailed, err: err}
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), w)
			}
			_, err = cmd.OutOrStdout().Write(res.Recipe)
			return err
		},
	}
}
