package sandbox

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// MaxLine is the most bytes of a line of output that Lines keeps: a
// longer one (a step printing megabytes with no newline) is cut there
// and marked as cut, so that it costs neither time nor memory.
const MaxLine = 64 << 10

// Lines splits a process's output into lines: each is passed to a
// function (a build makes it a progress event), with the given secrets'
// values replaced by "****", and the last few are kept for the error
// message of a failed step. A line longer than MaxLine is cut. Pass it as
// both Stdout and Stderr.
type Lines struct {
	mu     sync.Mutex
	redact []string // secrets' values, replaced by "****"
	emit   func(line string)
	// partial is the start of the line being written, at most window
	// bytes: MaxLine and room for a secret that starts before the cut
	// to be redacted whole. cut counts the bytes of the line past it.
	partial []byte
	cut     int64
	window  int
	tail    []string
	keep    int
}

// NewLines keeps the last keep lines, redacts redact and passes each line
// to emit.
func NewLines(keep int, redact []string, emit func(string)) *Lines {
	window := MaxLine
	for _, r := range redact {
		window = max(window, MaxLine+len(r))
	}
	return &Lines{emit: emit, keep: keep, redact: redact, window: window}
}

// Write takes output; it never fails. It looks at each byte once.
func (w *Lines) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.add(p)
			return n, nil
		}
		w.add(p[:i])
		w.flush()
		p = p[i+1:]
	}
}

// add appends b to the line being written, keeping at most window bytes.
func (w *Lines) add(b []byte) {
	if room := w.window - len(w.partial); len(b) > room {
		w.cut += int64(len(b) - room)
		b = b[:room]
	}
	w.partial = append(w.partial, b...)
}

// flush ends the line being written.
func (w *Lines) flush() {
	total := int64(len(w.partial)) + w.cut
	s := string(w.partial)
	w.partial, w.cut = w.partial[:0], 0
	if total > MaxLine {
		s = fmt.Sprintf("%s … [line cut: %d bytes]", redactCut(s, w.redact, cutUTF8(s, MaxLine)), total)
	} else {
		s = redactCut(strings.TrimRight(s, "\r"), w.redact, len(s))
	}
	w.line(s)
}

// redactCut returns the first n bytes of s with every occurrence of a
// value of redact that starts there replaced whole by "****", even one
// that ends past n.
func redactCut(s string, redact []string, n int) string {
	n = min(n, len(s))
	var hide []bool // the bytes of s inside an occurrence
	for _, r := range redact {
		if r == "" {
			continue
		}
		for i := 0; i < n; {
			j := strings.Index(s[i:], r)
			if j < 0 || i+j >= n {
				break
			}
			if hide == nil {
				hide = make([]bool, len(s))
			}
			for k := i + j; k < i+j+len(r); k++ {
				hide[k] = true
			}
			i += j + len(r) // as strings.ReplaceAll: occurrences do not overlap
		}
	}
	if hide == nil {
		return s[:n]
	}
	var b strings.Builder
	for i := 0; i < n; {
		if !hide[i] {
			b.WriteByte(s[i])
			i++
			continue
		}
		b.WriteString("****")
		for i < len(hide) && hide[i] {
			i++
		}
	}
	return b.String()
}

// cutUTF8 returns where to cut s to at most n bytes, not inside a UTF-8
// sequence.
func cutUTF8(s string, n int) int {
	if len(s) <= n {
		return len(s)
	}
	i := n
	for i > n-utf8.UTFMax && i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}

func (w *Lines) line(s string) {
	if w.emit != nil {
		w.emit(s)
	}
	w.tail = append(w.tail, s)
	if len(w.tail) > w.keep {
		w.tail = w.tail[len(w.tail)-w.keep:]
	}
}

// Tail flushes a final unterminated line and returns the last lines seen.
func (w *Lines) Tail() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 || w.cut > 0 {
		w.flush()
	}
	return append([]string(nil), w.tail...)
}

// Redactions are what Lines replaces of secrets' values: each whole value
// and each line of at least 8 characters of a multi-line one (output is
// handled line by line); empty and very short values are left alone.
func Redactions(secrets [][]byte) []string {
	var out []string
	for _, v := range secrets {
		if len(v) < 4 {
			continue
		}
		out = append(out, strings.TrimRight(string(v), "\r\n"))
		for _, line := range strings.Split(string(v), "\n") {
			if line = strings.TrimRight(line, "\r\n"); len(line) >= 8 {
				out = append(out, line)
			}
		}
	}
	return out
}

// PlainText makes s, a line of output, one line of printable text: after
// the last carriage return (a progress bar's last state), without escape
// sequences (colours, cursor moves) or other control characters (C0, DEL,
// C1), tabs and newlines as spaces, invalid UTF-8 as U+FFFD. Output is
// shown through it, in progress and in a failed step's error, so that
// what a step prints cannot move a terminal's cursor or rewrite what is
// on it.
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
