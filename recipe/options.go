package recipe

// Option configures Load and Parse.
type Option func(*options)

type options struct {
	buildArgs map[string]string
	context   string
	contextOK bool
	target    Platform
}

// WithBuildArgs sets build args (--build-arg NAME=VALUE). They override the
// defaults of the recipe's `args`; a build arg that no `args` entry
// declares gives a Warning, like docker's "build-args were not consumed".
func WithBuildArgs(args map[string]string) Option {
	return func(o *options) { o.buildArgs = args }
}

// WithContext sets the build context directory, against which copy
// sources are checked. The default is the recipe file's directory (for
// Parse: ".").
func WithContext(dir string) Option {
	return func(o *options) { o.context, o.contextOK = dir, true }
}
