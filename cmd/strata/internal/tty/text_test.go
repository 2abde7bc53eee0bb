package tty

import "testing"

// TestPlainText: what a step prints reaches a progress line as one line
// of printable text, the same in the plain renderer and the live view.
func TestPlainText(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"plain", "plain"},
		{"10%\r20%\r30%\r", "30%"},
		{"\x1b[1;31mred\x1b[0m and \x1b]0;title\x07done", "red and done"},
		{"a\tb\nc", "a b c"},
		{"bell\x07 del\x7f c1\u0085", "bell del c1"},
		{"bad \xff utf8", "bad \uFFFD utf8"},
	} {
		if got := PlainText(tt.in); got != tt.want {
			t.Errorf("PlainText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
