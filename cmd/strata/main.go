// Command strata builds OCI images from a YAML recipe, without a Dockerfile
// or a daemon. See the cli package for the commands.
package main

import (
	"os"

	"github.com/stratabuild/strata/cmd/strata/internal/cli"
)

func main() {
	// Run by a user other than root, a build runs rootless: in a user
	// namespace, through a copy of this program.
	if code, exit := cli.Rootless(os.Args[1:], os.Stdin, os.Stdout, os.Stderr); exit {
		os.Exit(code)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr, cli.BuildImage))
}
