// Package tty renders a build's progress events as a live terminal view,
// the one docker users know from BuildKit: a header with the elapsed time
// and the steps done so far, one line per step with its own timer and
// state (running, cached, done with its layer's size and +~- counts,
// failed), the last output lines of each running step under it, and each
// stage as a block of its own, so parallel stages never interleave; lines
// about the whole build come before the stages if heard before any, else
// after them (the result, "wrote …" and "image sha256:…", last). It is
// redrawn in place about ten times a second with cursor-up and erase-line
// sequences, every line cut to the terminal's width; when the build ends
// it collapses to a summary, its header saying how the build ended
// (FINISHED, FAILED, CANCELED), one line per step, the failed step
// keeping its last output lines.
//
// Input: build.Event values (View.Event), the build's error (View.Close),
// and the terminal to draw on.
// Output: ANSI text on that terminal. IsTerminal tells the CLI whether to
// use it (a terminal) or plain lines (a pipe, a CI log).
package tty
