// Package cli is the strata command line. Each command turns its flags
// into a request and composes the packages that carry it out:
//
//   - build: build.Options from the flags, the recipe loaded and
//     planned, handed to a Builder; prints the digest on stdout.
//   - validate: the recipe loaded and planned (plan.MakeAll), nothing run.
//   - diff: two images opened (commit.Pull) and compared (imagediff).
//   - convert: a Dockerfile turned into a recipe (internal/convert).
//   - schema: the recipe's JSON schema.
//   - prune: unused cache entries, blobs and snapshots removed (build/tidy).
//   - version: strata's version.
//
// Run as a user other than root, build and prune run again in a user
// namespace (Rootless).
//
// Input: the arguments, the environment (STRATA_ROOT, STRATA_RUNTIME,
// SOURCE_DATE_EPOCH, XDG_DATA_HOME and XDG_RUNTIME_DIR rootless, the
// variables --secret env= names, and the docker config's for registry
// credentials) and a Builder. Output: on stdout what the command makes
// (a digest, a diff, a recipe), errors and warnings on stderr, and an exit
// code: 0 success, 1 the build failed (diff: the images differ), 2 bad
// usage, an invalid recipe or a missing prerequisite.
package cli
