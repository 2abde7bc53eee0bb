// Package convert translates a Dockerfile into an equivalent strata
// recipe, for `strata convert`.
//
// Input: a Dockerfile's bytes, parsed with docker's own grammar (buildkit's
// frontend/dockerfile parser and instructions packages). Output: the
// strata.yaml text and warnings, each at a Dockerfile line, for what the
// recipe cannot carry or carries differently. An instruction without an
// equivalent (HEALTHCHECK, ONBUILD, ADD of a URL or an archive, ...) is
// left in the recipe as a comment where it was, never dropped silently.
//
// A single-stage Dockerfile gives the single-image form, several stages
// the multi-stage form; the last stage is the image, and its image:
// section carries the entrypoint, cmd, labels, ports, volumes and stop
// signal that the stage's FROM chain sets, as docker inherits them.
// Values docker expands (ENV, LABEL, COPY, WORKDIR, USER, ...) have their
// ARG, ENV and base-image variables written ${NAME}; RUN, CMD and
// ENTRYPOINT are left to the shell (a literal ${ is escaped as $${).
// docker gives RUN network access and the stage's ARGs as environment
// variables, so each run step gets network: host (unless --network=none)
// and an env of the stage's args, as docker sets them: an arg an ENV set
// after its ARG is left to the env step; one an ARG gave a value after an
// ENV of its name has that value written out, as strata's ${NAME} would
// give the ENV's (a warning says a --build-arg does not change it); an
// ARG without default is "" without a --build-arg, where docker leaves
// the name unset or the base image's (a warning too). docker's WORKDIR
// makes its directory, owned by the USER; strata's workdir step does not,
// so a run step of the image's mkdir before it does (a scratch stage has
// none: a warning).
package convert
