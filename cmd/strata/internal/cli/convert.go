package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/stratabuild/strata/internal/convert"
)

// strataIgnore is the ignore file that strata's build reads at the root
// of a build context, in .dockerignore's syntax.
const strataIgnore = ".strataignore"

// ignoreNote tells that strata reads its own ignore file when the
// Dockerfile's directory (the usual build context) has a .dockerignore
// and not it.
func ignoreNote(cmd *cobra.Command, dir string) {
	if _, err := os.Stat(filepath.Join(dir, ".dockerignore")); err != nil {
		return
	}
	if _, err := os.Stat(filepath.Join(dir, strataIgnore)); err == nil {
		return
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s: strata reads %s, in the same syntax: cp %s %s to leave the same files out of the build context\n",
		filepath.Join(dir, ".dockerignore"), strataIgnore, filepath.Join(dir, ".dockerignore"), filepath.Join(dir, strataIgnore))
}

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
			ignoreNote(cmd, filepath.Dir(file))
			_, err = cmd.OutOrStdout().Write(res.Recipe)
			return err
		},
	}
}
