// Package build turns a loaded recipe into an image: it plans the stages,
// runs each step in a sandbox on an overlay of the previous layers, commits
// the changes as layers and writes the image where Options say. A step's
// layer is known by its diffID as soon as its changes are diffed; its blob
// is compressed in the background (commit.Compressor) while the next steps
// run, and the build waits for the blobs only before its outputs.
//
// Input: Options (the command line's flags, validated by Options.Validate)
// and a *recipe.Recipe. Output: the image, written to each Output, and its
// digest.
package build
