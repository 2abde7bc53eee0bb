package tty

import (
	"fmt"
	"strings"
	"time"

	"github.com/mattn/go-runewidth"

	"github.com/stratabuild/strata/build/sandbox"
)

// PlainText makes s one line of printable text: after the last carriage
// return (a progress bar's last state), without escape sequences (colours,
// cursor moves) or other control characters (C0, DEL, C1), tabs and
// newlines as spaces, invalid UTF-8 as U+FFFD; so the width of what is
// printed is the width counted. Plain progress lines and the live view
// both show output through it, as a failed step's error shows its last
// lines (sandbox.PlainText).
func PlainText(s string) string { return sandbox.PlainText(s) }

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
