package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratabuild/strata/build"
	"github.com/stratabuild/strata/recipe"
)

// buildFlags holds the raw values of strata build's flags.
type buildFlags struct {
	file, target, platform, compression, progress string
	metadataFile, root, runtime                   string
	tags, outputs, buildArgs, secrets             []string
	cacheFrom, cacheTo, insecure                  []string
	push, load, noCache, dryRun                   bool
}

func newBuild(b Builder) *cobra.Command {
	var f buildFlags
	cmd := &cobra.Command{
		Use:   "build [flags] [CONTEXT]",
		Short: "Build an image from a recipe (CONTEXT/strata.yaml); print its digest",
		Long: `Build an image from a recipe. CONTEXT defaults to "."; the recipe to
CONTEXT/strata.yaml. Only the image digest is written to stdout, so that
$(strata build ...) works in scripts; progress goes to stderr.

Exit codes: 0 built; 1 the build failed; 2 bad usage or an invalid recipe.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := f.options(args)
			if err != nil {
				return err
			}
			r, err := loadRecipe(cmd, o.File, o.Context, o.BuildArgs)
			if err != nil {
				return err
			}
			if o.Target != "" {
				if _, err := r.Needed(o.Target); err != nil {
					return usageErr("--target: %v", err)
				}
			}
			digest, err := b(cmd.Context(), o, r, cmd.ErrOrStderr())
			if err != nil {
				return &exitError{code: ExitBuildFailed, err: err}
			}
			fmt.Fprintln(cmd.OutOrStdout(), strings.TrimRight(digest, "\n"))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVarP(&f.file, "file", "f", "", "recipe `FILE` (default CONTEXT/strata.yaml)")
	fl.StringArrayVarP(&f.tags, "tag", "t", nil, "name the result `REF` (repeatable)")
	fl.BoolVar(&f.push, "push", false, "push every --tag to its registry")
	fl.StringArrayVarP(&f.outputs, "output", "o", nil, "`SPEC`: type=oci,dest=DIR | type=docker,dest=FILE | type=registry (repeatable)")
	fl.BoolVar(&f.load, "load", false, "load the image into the local docker daemon")
	fl.StringArrayVar(&f.buildArgs, "build-arg", nil, "`NAME=VALUE` overriding an arg of the recipe (repeatable)")
	fl.StringArrayVar(&f.secrets, "secret", nil, "`id=ID,src=FILE | id=ID,env=VAR` for secret mounts (repeatable)")
	fl.StringVar(&f.target, "target", "", "build the stage named `STAGE` (default: the last)")
	fl.StringVar(&f.platform, "platform", "", "target platform `OS/ARCH` (default: the host's)")
	fl.BoolVar(&f.noCache, "no-cache", false, "run every step")
	fl.BoolVar(&f.dryRun, "dry-run", false, "resolve everything and ask the caches; print which steps would hit or run, run nothing")
	fl.StringArrayVar(&f.cacheFrom, "cache-from", nil, "read the layer cache from registry repository `REF` (repeatable)")
	fl.StringArrayVar(&f.cacheTo, "cache-to", nil, "write the layer cache to registry repository `REF` (repeatable)")
	fl.StringVar(&f.compression, "compression", "gzip", "layer compression: gzip or zstd")
	fl.StringVar(&f.progress, "progress", "auto", "progress output: auto, plain or json")
	fl.StringVar(&f.metadataFile, "metadata-file", "", "write the build's metadata as JSON to `FILE`")
	fl.StringVar(&f.root, "root", "", "state `DIR` (default "+build.DefaultRoot()+")")
	fl.StringVar(&f.runtime, "runtime", os.Getenv("STRATA_RUNTIME"), "OCI runtime running the steps (env STRATA_RUNTIME; default runc)")
	fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "reach registry `HOST` over plain HTTP (repeatable)")
	return cmd
}

// options turns the flags, CONTEXT and the environment into build.Options.
func (f *buildFlags) options(args []string) (build.Options, error) {
	o := build.Options{
		Context:            ".",
		File:               f.file,
		Target:             f.target,
		Tags:               f.tags,
		Push:               f.push,
		Load:               f.load,
		Platform:           f.platform,
		NoCache:            f.noCache,
		DryRun:             f.dryRun,
		CacheFrom:          f.cacheFrom,
		CacheTo:            f.cacheTo,
		Compression:        f.compression,
		Progress:           f.progress,
		MetadataFile:       f.metadataFile,
		Root:               f.root,
		Runtime:            f.runtime,
		InsecureRegistries: f.insecure,
	}
	if len(args) == 1 {
		o.Context = args[0]
	}
	if o.File == "" {
		o.File = filepath.Join(o.Context, "strata.yaml")
	}
	if o.Root == "" {
		o.Root = build.DefaultRoot()
	}
	var errs []string
	for _, spec := range f.outputs {
		out, err := build.ParseOutput(spec)
		if err != nil {
			errs = append(errs, "--output: "+err.Error())
			continue
		}
		o.Outputs = append(o.Outputs, out)
	}
	for _, spec := range f.secrets {
		s, err := build.ParseSecret(spec)
		if err != nil {
			errs = append(errs, "--secret: "+err.Error())
			continue
		}
		o.Secrets = append(o.Secrets, s)
	}
	buildArgs, err := parseBuildArgs(f.buildArgs)
	if err != nil {
		errs = append(errs, err.Error())
	}
	o.BuildArgs = buildArgs
	if f.platform != "" {
		p, err := recipe.ParsePlatform(f.platform)
		if err != nil {
			errs = append(errs, "--platform: "+err.Error())
		}
		o.Platform = p.String()
	}
	epoch, err := sourceDateEpoch()
	if err != nil {
		errs = append(errs, err.Error())
	}
	o.SourceDateEpoch = epoch
	if err := o.Validate(); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return build.Options{}, usageErr("%s", strings.Join(errs, "\nstrata: "))
	}
	return o, nil
}

// parseBuildArgs parses --build-arg NAME=VALUE; a bare NAME takes the
// value of the environment variable NAME, as docker does.
func parseBuildArgs(specs []string) (map[string]string, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(specs))
	for _, s := range specs {
		name, value, ok := strings.Cut(s, "=")
		if name == "" {
			return nil, fmt.Errorf("--build-arg: bad value %q: want NAME=VALUE", s)
		}
		if !ok {
			v, set := os.LookupEnv(name)
			if !set {
				return nil, fmt.Errorf("--build-arg %s: no value given and no environment variable %s (want NAME=VALUE)", s, s)
			}
			value = v
		}
		out[name] = value
	}
	return out, nil
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH (seconds since 1970, as
// reproducible-builds.org defines it); nil when unset or empty.
func sourceDateEpoch() (*time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 253402300799 {
		return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want a number of seconds since 1970-01-01 UTC", s)
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}

// loadRecipe loads the recipe and prints its warnings; an invalid recipe
// is a usage error, each problem on its own line.
func loadRecipe(cmd *cobra.Command, file, context string, buildArgs map[string]string) (*recipe.Recipe, error) {
	stderr := cmd.ErrOrStderr()
	r, err := recipe.Load(file, recipe.WithContext(context), recipe.WithBuildArgs(buildArgs))
	if err != nil {
		var list recipe.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(stderr, e)
			}
			return nil, &exitError{code: ExitUsage, err: err, printed: true}
		}
		return nil, usageErr("%v", err)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(stderr, "%s (warning)\n", w)
	}
	return r, nil
}
