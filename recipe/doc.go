// Package recipe reads a strata recipe (strata.yaml) into a validated,
// typed *Recipe. It knows YAML and the recipe's rules; it knows nothing of
// containers, OCI images or overlay mounts.
//
// Input: a file (Load) or bytes (Parse), optional build args
// (WithBuildArgs) and build context directory (WithContext).
// Output: a *Recipe whose every value is typed (os.FileMode, Owner, Port,
// Platform, Base, ...) and keeps the position (FILE:LINE:COL) it came from,
// or an ErrorList holding every problem found, sorted by position, each
// printed as "FILE:LINE:COL: message".
//
// # Forms
//
// Both forms of RECIPE.md become Recipe.Stages. The single-image form
// (top-level from/steps) gives one stage named "". In the multi-stage form
// the top-level platform, env, workdir, user and shell are defaults for
// every stage (a stage's env is merged over the top-level env). The last
// stage is the image; Recipe.Needed(target) returns the stages a target
// needs, dependencies first.
//
// # References between stages
//
// In the multi-stage form a from: or copy from: equal to a stage name
// refers to that stage (earlier or later; cycles are errors naming the
// cycle). A reference that looks like a stage name (no "/", ":" or ".")
// but names no stage is an "unknown stage" error: write "debian:bookworm"
// or "docker.io/library/debian" for an image. In the single-image form
// there are no stages, so every from: is an image reference. Registry
// references are checked syntactically only. Relative oci-layout:// and
// docker-archive:// paths are relative to the build context.
//
// # ${NAME} expansion
//
// Every string value (run commands, copy paths, env values, workdir, user,
// mounts, from:, image config, ...) expands ${NAME}. Names are looked up,
// the later winning: the base image's env (see below), args (defaults
// overridden by build args), the top-level env, the stage's env, the env
// steps seen so far, and the run step's own env. An env mapping's values
// see the variables as they were before the mapping, so
// PATH: "/opt/bin:${PATH}" extends the previous PATH. "$${NAME}" is a
// literal "${NAME}"; "$NAME" without braces is left alone for the shell.
// The image: section sees args and the top-level env only.
//
// A name the recipe defines nowhere may still come from the base image's
// env (RECIPE.md's own example extends PATH), which is unknown until the
// base is pulled. So:
//
//   - when a stage's base chain ends in scratch, an undefined name is an
//     error at load time, at the position where it is used;
//   - otherwise the stage keeps every string that uses such a name
//     unexpanded, lists the names in Stage.Unresolved, and the build calls
//     Stage.Expand(baseEnv) once it knows the base image's env. Expand
//     returns a fully expanded copy, or an ErrorList positioned at each
//     name still undefined. Expand is cheap and correct on any stage, so
//     a build may call it for every stage.
//
// Args are always known at load time.
//
// # Paths
//
// Workdirs, copy destinations and mount targets are cleaned after
// expansion; a relative one resolves against the recipe's previous
// workdir. Before the recipe sets a workdir, the base image's WorkingDir
// is in effect, unknown here: a relative path then stays relative and the
// build resolves it against the base's WorkingDir, as docker does. Volumes
// are absolute. Copy sources from the build context must stay inside it
// after cleaning; the check is lexical (symlinks are the build's concern).
package recipe
