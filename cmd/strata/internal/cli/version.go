package cli

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version is strata's version, set at link time:
//
//	go build -ldflags "-X github.com/stratabuild/strata/cmd/strata/internal/cli.Version=v1.2.3" ./cmd/strata
//
// Left "", it is taken from the module's build info.
var Version = ""

// versionString returns "strata VERSION (GO, REVISION)".
func versionString() string {
	v, goVersion, rev := Version, "", ""
	if info, ok := debug.ReadBuildInfo(); ok {
		goVersion = info.GoVersion
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		var modified bool
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if rev != "" && modified {
			rev += "-dirty"
		}
	}
	if v == "" {
		v = "devel"
	}
	s := "strata " + v
	extra := goVersion
	if rev != "" {
		extra += ", " + rev
	}
	if extra != "" {
		s += " (" + extra + ")"
	}
	return s
}

func newVersion() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print strata's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), versionString())
			return nil
		},
	}
}
