package sandbox

import (
	"bytes"
	"strings"
	"sync"
)

// Lines splits a process's output into lines: each is passed to a
// function (a build makes it a progress event), with the given secrets'
// values replaced by "****", and the last few are kept for the error
// message of a failed step. Pass it as both Stdout and Stderr.
type Lines struct {
	mu      sync.Mutex
	redact  []string // secrets' values, replaced by "****"
	emit    func(line string)
	partial bytes.Buffer
	tail    []string
	keep    int
}

// NewLines keeps the last keep lines, redacts redact and passes each line
// to emit.
func NewLines(keep int, redact []string, emit func(string)) *Lines {
	return &Lines{emit: emit, keep: keep, redact: redact}
}

// Write takes output; it never fails.
func (w *Lines) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial.Write(p)
	for {
		b := w.partial.Bytes()
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		w.line(string(b[:i]))
		w.partial.Next(i + 1)
	}
	return len(p), nil
}

func (w *Lines) line(s string) {
	s = strings.TrimRight(s, "\r")
	for _, r := range w.redact {
		s = strings.ReplaceAll(s, r, "****")
	}
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
	if w.partial.Len() > 0 {
		w.line(w.partial.String())
		w.partial.Reset()
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
