package tty

import (
	"fmt"
	"strings"
	"time"

	"github.com/mattn/go-runewidth"
)

// clean makes s one line of printable text: escape sequences (colours,
// cursor moves) and control characters are dropped, tabs and newlines
// become spaces, so the width of what is printed is the width counted.
func clean(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == 0x1b:
			i = skipEscape(s, i)
		case c == '\t' || c == '\n':
			b.WriteByte(' ')
		case c < 0x20 || c == 0x7f:
		default:
			b.WriteByte(c)
		}
	}
	return strings.ToValidUTF8(b.String(), "?")
}

// skipEscape returns the index of the last byte of the escape sequence
// starting at s[i] (ESC): CSI "ESC [ params final", OSC "ESC ] … BEL|ST",
// or ESC and one more byte.
func skipEscape(s string, i int) int {
	if i+1 >= len(s) {
		return i
	}
	switch s[i+1] {
	case '[':
		j := i + 2
		for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
			j++
		}
		return min(j, len(s)-1)
	case ']':
		for j := i + 2; j < len(s); j++ {
			if s[j] == 0x07 {
				return j
			}
			if s[j] == 0x1b && j+1 < len(s) && s[j+1] == '\\' {
				return j + 1
			}
		}
		return len(s) - 1
	}
	return i + 1
}

// fit cuts s to width columns, ending it with "…" if it was cut.
func fit(s string, width int) string {
	if width <= 0 || runewidth.StringWidth(s) <= width {
		return s
	}
	return runewidth.Truncate(s, width, "…")
}

// leftRight puts right at the end of a line of width columns, cutting
// left to make room.
func leftRight(left, right string, width int) string {
	if right == "" {
		return fit(left, width)
	}
	rw := runewidth.StringWidth(right)
	if width <= 0 {
		return left + "  " + right
	}
	room := width - rw - 1
	if room < 10 {
		return fit(left+" "+right, width)
	}
	left = fit(left, room)
	return left + strings.Repeat(" ", width-rw-runewidth.StringWidth(left)) + right
}

// seconds formats d as docker does: "3.8s".
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.1fs", d.Seconds())
}
