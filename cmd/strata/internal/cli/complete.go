package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/stratabuild/strata/recipe"
)

// commonPlatforms are offered for --platform; any os/arch ParsePlatform
// knows is accepted.
var commonPlatforms = []string{"linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/386",
	"linux/ppc64le", "linux/s390x", "linux/riscv64"}

// completeBuildFlags registers value completion for build's flags: the
// enums, the platforms (a comma-separated list), and the recipe's stages
// for --target.
func completeBuildFlags(cmd *cobra.Command) {
	fixed := func(values ...string) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return values, cobra.ShellCompDirectiveNoFileComp
		}
	}
	_ = cmd.RegisterFlagCompletionFunc("progress", fixed("auto", "plain", "json"))
	_ = cmd.RegisterFlagCompletionFunc("compression", fixed("gzip", "zstd"))
	_ = cmd.RegisterFlagCompletionFunc("timestamp", fixed("now"))
	_ = cmd.RegisterFlagCompletionFunc("platform", completePlatforms)
	_ = cmd.RegisterFlagCompletionFunc("target", completeStages)
}

// completePlatforms offers the next platform of a comma-separated list.
func completePlatforms(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	done, last := "", toComplete
	if i := strings.LastIndexByte(toComplete, ','); i >= 0 {
		done, last = toComplete[:i+1], toComplete[i+1:]
	}
	var out []string
	for _, p := range commonPlatforms {
		if strings.HasPrefix(p, last) && !strings.Contains(","+done, ","+p+",") {
			out = append(out, done+p)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

// completeStages offers the named stages of the recipe the command line
// names (-f, or CONTEXT/strata.yaml).
func completeStages(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	file, _ := cmd.Flags().GetString("file")
	_, file, _ = recipeFile(args, file)
	r, err := recipe.Load(file)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, s := range r.Stages {
		if s.Name != "" {
			names = append(names, s.Name)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
