// Package cli is the strata command line: it turns flags into
// build.Options, loads and validates the recipe, hands both to a Builder,
// prints the digest on stdout and maps failures to exit codes.
//
// Input: the arguments, the environment (STRATA_RUNTIME,
// SOURCE_DATE_EPOCH) and a Builder. Output: the image digest on stdout,
// errors and warnings on stderr, and an exit code: 0 success, 1 the build
// failed, 2 bad usage or an invalid recipe.
package cli
