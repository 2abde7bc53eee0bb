package tty

import (
	"io"
	"os"

	"golang.org/x/term"
)

// IsTerminal says whether f is a terminal, where the live view can be
// drawn; plain lines are for anything else.
func IsTerminal(f *os.File) bool {
	return f != nil && term.IsTerminal(int(f.Fd()))
}

// termSize is the width and height of the terminal w is, or 0, 0 if it
// is none.
func termSize(w io.Writer) (width, height int) {
	f, ok := w.(*os.File)
	if !ok {
		return 0, 0
	}
	width, height, err := term.GetSize(int(f.Fd()))
	if err != nil {
		return 0, 0
	}
	return width, height
}
