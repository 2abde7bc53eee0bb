// Package plan resolves a loaded recipe into a typed plan before anything
// runs: the stages a target needs in dependency order, each stage's base
// pulled (manifest and config) and platform chosen, every ${NAME} the
// base's env defines expanded, and every step with the config State it
// runs in, its destination and mount targets resolved against the working
// dir (the base image's included), and the parts of its cache key known up
// front (a context copy's input digests, a copied image's digest).
//
// Input: Options and a *recipe.Recipe. Output: a *Plan, or every problem
// found. A build executes the plan; --dry-run prints it.
package plan
