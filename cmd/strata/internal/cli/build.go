package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/cobra"

	"github.com/stratabuild/strata/build"
	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/build/plan"
	"github.com/stratabuild/strata/build/sandbox"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/stateroot"
	"github.com/stratabuild/strata/layers"
	"github.com/stratabuild/strata/recipe"
)

// Request is a build as the command line asks for it: the build's options
// and what only the command line handles.
type Request struct {
	Build build.Options
	// Context and File locate the build context and the recipe.
	Context, File string
	// BuildArgs override the recipe's args.
	BuildArgs map[string]string
	// Progress is "auto", "plain" or "json".
	Progress string
	// MetadataFile receives JSON about the build; "" for none.
	MetadataFile string
	// IIDFile receives the image digest, as buildx's --iidfile; "" for none.
	IIDFile string
	// Quiet shows no progress: stderr stays empty unless the build fails.
	Quiet bool
	// Warnings are said before the build starts, as progress.
	Warnings []string
}

// buildFlags holds the raw values of strata build's flags.
type buildFlags struct {
	file, target, compression, progress string
	platforms                           []string // each --platform, comma-separated lists
	metadataFile, root, runtime         string
	memory, maxLayerBytes, timestamp    string
	pidsLimit, maxLayerEntries          int64
	compressionLevel                    int
	levelGiven                          bool // --compression-level was given
	iidFile                             string
	tags, outputs, buildArgs, secrets   []string
	cacheFrom, cacheTo, insecure        []string
	labels, annotations                 []string
	push, load, noCache, dryRun, quiet  bool
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
			defer stopOnClosedOutput(cmd)()
			f.levelGiven = cmd.Flags().Changed("compression-level")
			req, err := f.request(cmd.Context(), args)
			if err != nil && cmd.Context().Err() != nil { // stopped while --load's daemon was asked
				return &exitError{code: ExitBuildFailed, err: errors.New("interrupted: stopped before the build started")}
			}
			if err != nil {
				return err
			}
			r, err := loadRecipe(cmd, req.File, req.Context, f.file != "", req.BuildArgs, false)
			if err != nil {
				return err
			}
			needed, err := r.Needed(req.Build.Target)
			switch {
			case err != nil && req.Build.Target != "":
				return usageErr("--target: %v", err)
			case err != nil:
				return usageErr("%v", err)
			}
			if len(req.Build.Platforms) == 0 && len(r.Platforms) > 1 {
				// --platform was checked with the flags; the recipe's
				// platforms: make an index just the same.
				if err := commit.CheckIndexOutputs(req.Build.Outputs); err != nil {
					return usageErr("%v", err)
				}
			}
			if err := plan.CheckContext(r, needed, req.Build.Root); err != nil {
				p := &printer{w: cmd.ErrOrStderr(), seen: map[string]bool{}}
				p.print(err)
				return &exitError{code: ExitUsage, err: err, printed: true}
			}
			digest, err := b(cmd.Context(), req, r, cmd.ErrOrStderr())
			var list recipe.ErrorList
			if errors.As(err, &list) { // a ${NAME} the base's env does not define either
				return &exitError{code: ExitUsage, err: err}
			}
			var pe *plan.PullError
			if errors.As(err, &pe) && baseMissing(pe) { // a base the recipe names is not there, as validate says
				return &exitError{code: ExitUsage, err: err}
			}
			if err != nil && cmd.Context().Err() != nil {
				return &exitError{code: ExitBuildFailed, err: errors.New("interrupted: the build stopped before it finished; no output was left half-written, and no mount, container or temp file is left")}
			}
			if err != nil {
				return &exitError{code: ExitBuildFailed, err: err}
			}
			if _, err := fmt.Fprintln(cmd.OutOrStdout(), strings.TrimRight(digest, "\n")); err != nil {
				// A script reading it gets nothing: the build is
				// done (its outputs written), but it did not work.
				what := "the image was built, but writing its digest to stdout failed"
				if req.Build.DryRun {
					what = "writing the plan to stdout failed"
				}
				return &exitError{code: ExitBuildFailed, err: fmt.Errorf("%s: %w", what, err)}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVarP(&f.file, "file", "f", "", "recipe `FILE` (default CONTEXT/strata.yaml; - reads it from stdin, CONTEXT then required)")
	fl.StringArrayVarP(&f.tags, "tag", "t", nil, "name the result `REF` (repeatable)")
	fl.BoolVar(&f.push, "push", false, "push every --tag to its registry")
	fl.StringArrayVarP(&f.outputs, "output", "o", nil, "write the image to `SPEC`: type=oci,dest=DIR | type=docker,dest=FILE | type=registry (repeatable)")
	fl.BoolVar(&f.load, "load", false, "load the image into the local docker daemon")
	fl.StringArrayVar(&f.buildArgs, "build-arg", nil, "set the recipe's arg NAME: `NAME=VALUE` (repeatable)")
	fl.StringArrayVar(&f.secrets, "secret", nil, "give a secret mount its content, `SPEC`: id=ID,src=FILE | id=ID,env=VAR | id=ID (the environment variable ID if set, else the file ID) (repeatable)")
	fl.StringVar(&f.target, "target", "", "build the stage named `STAGE` (default: the last)")
	fl.StringArrayVar(&f.platforms, "platform", nil, "target `PLATFORMS`, OS/ARCH[/VARIANT] comma-separated or the flag repeated: several give an image index (default: the recipe's platforms:, else the host's)")
	fl.BoolVar(&f.noCache, "no-cache", false, "run every step")
	fl.BoolVar(&f.dryRun, "dry-run", false, "resolve everything and ask the caches; print which steps would hit or run, run nothing")
	fl.StringArrayVar(&f.cacheFrom, "cache-from", nil, "read the layer cache from `SPEC`: registry repository REF | type=registry,ref=REF | type=local,src=DIR (repeatable)")
	fl.StringArrayVar(&f.cacheTo, "cache-to", nil, "write the layer cache to `SPEC`: registry repository REF | type=registry,ref=REF | type=local,dest=DIR (repeatable; mode=min|max accepted, every step is recorded)")
	fl.StringVar(&f.compression, "compression", "gzip", "layer compression `CODEC`: gzip or zstd (an output choice: cached layers are re-encoded, never re-run)")
	fl.IntVar(&f.compressionLevel, "compression-level", 0, fmt.Sprintf("compression level `N`: gzip 1-9 (default %d), zstd 1-22 (default %d)", commit.DefaultGzipLevel, commit.DefaultZstdLevel))
	fl.StringVar(&f.progress, "progress", "auto", "progress output `MODE`: auto (a live view on a terminal, else plain), plain or json")
	fl.StringVar(&f.metadataFile, "metadata-file", "", "write the build's metadata as JSON to `FILE`")
	fl.StringVar(&f.iidFile, "iidfile", "", "write the image digest to `FILE`")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print only the digest; nothing on stderr unless the build fails")
	fl.StringArrayVar(&f.labels, "label", nil, "set image label `K=V`, over the recipe's (repeatable)")
	fl.StringArrayVar(&f.annotations, "annotation", nil, "set manifest annotation `K=V`, over the recipe's (repeatable)")
	fl.StringVar(&f.root, "root", "", "state `DIR` (env STRATA_ROOT; default "+defaultRoot()+")")
	fl.StringVar(&f.runtime, "runtime", os.Getenv("STRATA_RUNTIME"), "the OCI runtime `BINARY` running the steps (env STRATA_RUNTIME; default runc)")
	fl.StringArrayVar(&f.insecure, "insecure-registry", nil, "reach registry `HOST` over plain HTTP, or with an unverified certificate (repeatable)")
	fl.StringVar(&f.timestamp, "timestamp", "", "the build epoch: `now|UNIX`, the clock or seconds since 1970 (default: SOURCE_DATE_EPOCH, else the newest base image's created time)")
	defer completeBuildFlags(cmd)
	fl.StringVar(&f.memory, "memory", "", "memory limit of each run step: `SIZE`, such as 2g (default: none)")
	fl.Int64Var(&f.pidsLimit, "pids-limit", 0, fmt.Sprintf("`N` processes a run step may hold at once (default %d; -1: no limit)", sandbox.DefaultPidsLimit))
	fl.StringVar(&f.maxLayerBytes, "max-layer-bytes", "", "most bytes a base layer may expand to: `SIZE`, such as 100g (default 64g)")
	fl.Int64Var(&f.maxLayerEntries, "max-layer-entries", 0, fmt.Sprintf("most entries, `N`, a base layer may hold (default %d)", layers.DefaultMaxLayerEntries))
	return cmd
}

// recipeFile says where a command's build context and recipe are:
// CONTEXT (default "."), and the -f file, else CONTEXT/strata.yaml;
// explicit says -f named it.
func recipeFile(args []string, file string) (context, path string, explicit bool) {
	context = "."
	if len(args) > 0 {
		context = args[0]
	}
	if file != "" {
		return context, file, true
	}
	return context, filepath.Join(context, "strata.yaml"), false
}

// problems collects every usage error of a command line.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// request turns the flags, CONTEXT and the environment into a Request,
// reporting every problem at once.
func (f *buildFlags) request(ctx context.Context, args []string) (Request, error) {
	var bad problems
	req := Request{Progress: f.progress, MetadataFile: f.metadataFile, IIDFile: f.iidFile, Quiet: f.quiet}
	req.Context, req.File, _ = recipeFile(args, f.file)
	if err := checkStdinContext(f.file, args); err != nil {
		bad.add("%v", err)
	}
	o := &req.Build
	o.Root, o.Target, o.NoCache, o.DryRun, o.Runtime = f.root, f.target, f.noCache, f.dryRun, f.runtime
	if o.Root == "" {
		o.Root = defaultRoot()
	}
	for _, h := range f.insecure {
		if strings.ContainsAny(h, "/ ") || h == "" {
			bad.add("--insecure-registry: bad host %q: want HOST or HOST:PORT", h)
		}
	}
	o.Registry = commit.RegistryOptions{Insecure: f.insecure}
	for _, t := range f.tags {
		tag, err := commit.ParseTag(t, o.Registry)
		if err != nil || strings.Contains(t, "@") {
			bad.add("--tag: bad reference %q: want [REGISTRY/]REPOSITORY[:TAG], lowercase", t)
			continue
		}
		o.Tags = append(o.Tags, tag)
	}
	f.outputsOf(o, &bad)
	if len(o.Tags) > 0 && len(o.Outputs) == 0 && !o.DryRun {
		// As buildx warns: the build result will only remain in the build cache.
		req.Warnings = append(req.Warnings, fmt.Sprintf("no output given: the image tagged %s is only in strata's state root %s; "+
			"write it with -o type=oci,dest=DIR or -o type=docker,dest=FILE, --push or --load", strings.Join(f.tags, ", "), o.Root))
	}
	if err := commit.CheckOutputs(ctx, o.Outputs, !o.DryRun); err != nil {
		bad.add("%v", err)
	}
	req.Warnings = append(req.Warnings, f.cachesOf(o, &bad)...)
	var err error
	if req.BuildArgs, err = parseBuildArgs(f.buildArgs); err != nil {
		bad.add("%v", err)
	}
	f.secretsOf(o, &bad)
	if o.Labels, err = parseLabels(f.labels); err != nil {
		bad.add("%v", err)
	}
	if o.Annotations, err = parseAnnotations(f.annotations); err != nil {
		bad.add("%v", err)
	}
	for _, d := range []struct{ flag, file, example string }{
		{"--iidfile", f.iidFile, "iid.txt"}, {"--metadata-file", f.metadataFile, "metadata.json"},
	} {
		if d.file == "" {
			continue
		}
		if err := commit.CheckFileDest(d.file, "a file name", d.example); err != nil { // a file that can be written, its parents made
			bad.add("%s: %v", d.flag, err)
		}
	}
	if err := checkDests(req); err != nil { // no two of them one file
		bad.add("%v", err)
	}
	for _, spec := range strings.Split(strings.Join(f.platforms, ","), ",") {
		if spec = strings.TrimSpace(spec); spec == "" {
			continue
		}
		p, err := recipe.ParsePlatform(spec)
		if err != nil {
			bad.add("--platform: %v", err)
			continue
		}
		v := v1.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant}
		if slices.ContainsFunc(o.Platforms, func(q v1.Platform) bool { return q.Equals(v) }) {
			bad.add("--platform: %s is given twice", p)
			continue
		}
		o.Platforms = append(o.Platforms, v)
	}
	if len(o.Platforms) > 1 {
		if err := commit.CheckIndexOutputs(o.Outputs); err != nil {
			bad.add("%v", err)
		}
	}
	if c, err := f.compressionOf(); err != nil {
		bad.add("%v", err)
	} else {
		o.Compression = c
	}
	if !slices.Contains([]string{"auto", "plain", "json"}, f.progress) {
		bad.add("--progress: bad value %q: want auto, plain or json", f.progress)
	}
	if o.Epoch, err = sourceDateEpoch(); err != nil {
		bad.add("%v", err)
	}
	switch f.timestamp {
	case "":
	case "now":
		o.Epoch, o.Now = nil, true
	default:
		n, err := strconv.ParseInt(f.timestamp, 10, 64)
		if err != nil || n < 0 || n > 253402300799 {
			bad.add("--timestamp: bad value %q: want now or a number of seconds since 1970-01-01 UTC", f.timestamp)
		}
		t := time.Unix(n, 0).UTC()
		o.Epoch, o.EpochFromFlag = &t, true
	}
	f.limitsOf(o, &bad)
	if len(bad) > 0 {
		return Request{}, usageErr("%s", strings.Join(bad, "\nstrata: "))
	}
	return req, nil
}

// compressionOf parses --compression and --compression-level. To commit
// a level 0 is the codec's default; given on the command line it is a
// level out of range, as -1 or 10 is.
func (f *buildFlags) compressionOf() (commit.Compression, error) {
	if f.compression != string(commit.CodecGzip) && f.compression != string(commit.CodecZstd) {
		return commit.Compression{}, fmt.Errorf("--compression: bad value %q: want gzip or zstd", f.compression)
	}
	if f.levelGiven && f.compressionLevel == 0 {
		most := 9
		if f.compression == string(commit.CodecZstd) {
			most = 22
		}
		return commit.Compression{}, fmt.Errorf("--compression-level: bad %s level 0: want 1 (fastest) to %d (smallest), or leave it out for the default", f.compression, most)
	}
	c, err := commit.ParseCompression(f.compression, f.compressionLevel)
	if err != nil {
		return commit.Compression{}, fmt.Errorf("--compression-level: %w", err)
	}
	return c, nil
}

// outputsOf parses -o, --push and --load; a registry output pushes once.
func (f *buildFlags) outputsOf(o *build.Options, bad *problems) {
	dests := map[string]bool{}
	for _, spec := range f.outputs {
		out, err := parseOutput(spec)
		if err != nil {
			bad.add("--output: %v", err)
			continue
		}
		if out.Dest != "" && dests[out.Dest] {
			bad.add("--output %s: dest %s is used twice", out, out.Dest)
		}
		dests[out.Dest] = true
		if out.Type == commit.OutputRegistry && len(f.tags) == 0 {
			bad.add("--output type=registry needs at least one --tag to push to")
		}
		if out.Type != commit.OutputRegistry || !slices.Contains(o.Outputs, out) {
			o.Outputs = append(o.Outputs, out)
		}
	}
	if f.push {
		if len(f.tags) == 0 {
			bad.add("--push needs at least one --tag to push to")
		}
		if reg := (commit.Output{Type: commit.OutputRegistry}); !slices.Contains(o.Outputs, reg) {
			o.Outputs = append(o.Outputs, reg)
		}
	}
	if f.load {
		o.Outputs = append(o.Outputs, commit.Output{Type: commit.OutputDaemon})
	}
}

// cachesOf parses --cache-from and --cache-to. A local --cache-from
// directory that does not exist is left out with a warning, as buildx
// does: the first run of a CI job has no cache yet. A local --cache-to
// directory that cannot be written is refused before the build.
func (f *buildFlags) cachesOf(o *build.Options, bad *problems) (warnings []string) {
	for _, c := range []struct {
		flag string
		refs []string
		into *[]cache.Store
	}{{"--cache-from", f.cacheFrom, &o.CacheFrom}, {"--cache-to", f.cacheTo, &o.CacheTo}} {
		for _, ref := range c.refs {
			s, err := parseCache(ref, c.flag == "--cache-from", o.Registry)
			if err != nil {
				bad.add("%s: %v", c.flag, err)
				continue
			}
			if d, ok := s.(*cache.Dir); ok && c.flag == "--cache-from" {
				if _, err := os.Stat(d.Path); err != nil {
					warnings = append(warnings, fmt.Sprintf("--cache-from: local cache %s not used: %v", d.Path, errors.Unwrap(err)))
					continue
				}
			}
			if d, ok := s.(*cache.Dir); ok && c.flag == "--cache-to" && !o.DryRun {
				if err := d.CheckWrite(); err != nil {
					bad.add("--cache-to: %v", err)
					continue
				}
			}
			*c.into = append(*c.into, s)
		}
	}
	return warnings
}

// secretsOf parses and reads every --secret.
func (f *buildFlags) secretsOf(o *build.Options, bad *problems) {
	for _, spec := range f.secrets {
		s, err := parseSecret(spec)
		if err != nil {
			bad.add("--secret: %v", err)
			continue
		}
		if _, dup := o.Secrets[s.ID]; dup {
			bad.add("--secret: id %s given twice", s.ID)
			continue
		}
		data, err := s.read()
		if err != nil {
			bad.add("--secret: %v", err)
			continue
		}
		if o.Secrets == nil {
			o.Secrets = map[string][]byte{}
		}
		o.Secrets[s.ID] = data
	}
}

// limitsOf parses the limits of run steps and base layers.
func (f *buildFlags) limitsOf(o *build.Options, bad *problems) {
	o.PidsLimit, o.LayerLimits.MaxEntries = f.pidsLimit, f.maxLayerEntries
	if stateroot.Rootless() && (f.memory != "" || f.pidsLimit != 0) {
		bad.add("--memory and --pids-limit need cgroups, which a rootless build has none of here: build as root to limit steps")
	}
	if f.memory != "" {
		n, err := parseBytes(f.memory)
		switch {
		case err != nil:
			bad.add("--memory: %v", err)
		case n < sandbox.MinMemoryLimit:
			bad.add("--memory %s: below the smallest limit a step can start with, 6m", f.memory)
		}
		o.MemoryLimit = n
	}
	if f.maxLayerBytes != "" {
		n, err := parseBytes(f.maxLayerBytes)
		if err != nil {
			bad.add("--max-layer-bytes: %v", err)
		}
		o.LayerLimits.MaxBytes = n
	}
}

// parseBytes parses a size as docker's --memory does: a number with an
// optional unit b, k, m, g or t (powers of 1024; "kb", "mib" and such too).
func parseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "ib"), "b")
	mult := int64(1)
	if t != "" {
		if i := strings.IndexByte("kmgt", t[len(t)-1]); i >= 0 {
			mult, t = int64(1)<<(10*(i+1)), t[:len(t)-1]
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 || n*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("bad size %q: want a number with an optional unit k, m, g or t, such as 2g", s)
	}
	return int64(n * float64(mult)), nil
}

// parseBuildArgs parses --build-arg NAME=VALUE; a bare NAME takes the
// value of the environment variable NAME, and is left out when that is
// not set (the arg keeps its default), as docker does: CI lines pass
// --build-arg http_proxy whether or not the runner has a proxy.
func parseBuildArgs(specs []string) (map[string]string, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(specs))
	for _, s := range specs {
		name, value, ok := strings.Cut(s, "=")
		if name == "" || strings.ContainsAny(name, " \t\n") {
			return nil, fmt.Errorf("--build-arg: bad value %q: want NAME=VALUE", s)
		}
		if !ok {
			v, set := os.LookupEnv(name)
			if !set {
				continue
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

// loadRecipe loads the recipe (from stdin for -f -) and prints its
// warnings (unless the command was asked to be quiet); an invalid recipe
// is a usage error, each problem on its own line, and a Dockerfile is
// said to be one.
func loadRecipe(cmd *cobra.Command, file, context string, explicit bool, buildArgs map[string]string, baseEnvWarnings bool) (*recipe.Recipe, error) {
	stderr := cmd.ErrOrStderr()
	data, err := readRecipe(cmd.Context(), cmd.InOrStdin(), file, context, explicit)
	if err != nil {
		return nil, err
	}
	name := file
	if file == "-" {
		name = stdinName
	}
	r, err := recipe.Parse(name, data, recipe.WithContext(context), recipe.WithBuildArgs(buildArgs))
	if err != nil {
		var list recipe.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(stderr, e)
			}
			if hint := dockerfileHint(data, file); hint != "" {
				fmt.Fprintf(stderr, "strata: %s\n", hint)
			}
			return nil, &exitError{code: ExitUsage, err: err, printed: true}
		}
		return nil, usageErr("%v", err)
	}
	if quiet, _ := cmd.Flags().GetBool("quiet"); quiet { // strata build -q
		return r, nil
	}
	for _, w := range r.Warnings {
		if !w.BaseEnv || baseEnvWarnings { // else resolving the base settles it
			fmt.Fprintf(stderr, "%s (warning)\n", w)
		}
	}
	return r, nil
}
