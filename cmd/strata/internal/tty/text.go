package tty

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mattn/go-runewidth"
)

// PlainText makes s one line of printable text: after the last carriage
// return (a progress bar's last state), without escape sequences (colours,
// cursor moves) or other control characters (C0, DEL, C1), tabs and
// newlines as spaces, invalid UTF-8 as U+FFFD; so the width of what is
// printed is the width counted. Plain progress lines and the live view
// both show output through it.
func PlainText(s string) string {
	if i := strings.LastIndexByte(strings.TrimRight(s, "\r"), '\r'); i >= 0 {
		s = s[i+1:]
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == 0x1b:
			size = escapeLen(s[i:])
		case r == '\t' || r == '\n':
			b.WriteByte(' ')
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case unicode.IsControl(r):
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// escapeLen is the length of the escape sequence s starts with (s[0] is
// ESC): CSI "ESC [ params final", OSC "ESC ] … BEL|ESC \", or ESC and one
// more byte.
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch s[1] {
	case '[':
		for j := 2; j < len(s); j++ {
			if s[j] >= 0x40 && s[j] <= 0x7e {
				return j + 1
			}
		}
		return len(s)
	case ']':
		for j := 2; j < len(s); j++ {
			if s[j] == 0x07 {
				return j + 1
			}
			if s[j] == 0x1b && j+1 < len(s) && s[j+1] == '\\' {
				return j + 2
			}
		}
		return len(s)
	}
	return 2
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
