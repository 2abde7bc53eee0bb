// Command strata builds OCI images from a YAML recipe, without a Dockerfile
// or a daemon. See the cli package for the commands.
package main

import (
	"os"

	"github.com/stratabuild/strata/cmd/strata/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr, cli.BuildImage))
}
