// Package build turns a loaded recipe into an image: build/plan resolves
// it into a typed plan per platform, and build executes the plans — the
// stages as a DAG, each step looked up in the cache and, on a miss, run on
// its stage's filesystem (build/chain: snapshots, an overlay with a fresh
// upper dir, the upper dir diffed into a layer). A step's layer is known
// by its diffID as soon as its changes are diffed; its blob is compressed
// in the background (commit.Compressor) while the next steps run, and the
// build waits for the blobs only before its outputs. When no cache lookup
// can hit (--no-cache, or an empty cache and no --cache-from), nothing
// needs the diffID before the blob: the upper dir is only trimmed, the
// next step starts on it, and the diffID and the steps' cache keys are
// learned as the layers are compressed.
//
// Input: Options (the command line's flags, parsed and checked by
// cmd/strata) and a *recipe.Recipe. Output: the image, written to each
// Output, and its digest.
package build
