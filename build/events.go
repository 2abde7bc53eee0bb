package build

import (
	"bytes"
	"strings"
	"sync"
	"time"

	"github.com/stratabuild/strata/build/cache"
)

// EventKind says what an Event reports.
type EventKind string

// The kinds of progress events, in the order a step emits them.
const (
	EventStart  EventKind = "start"  // a step begins
	EventOutput EventKind = "output" // one line of a run step's output
	EventDone   EventKind = "done"   // a step finished (Cached says whether it ran)
	EventFailed EventKind = "failed" // a step failed; Error says why
	EventInfo   EventKind = "info"   // anything else worth a line: pulls, pushes, outputs
)

// Event is one progress report. The build emits events; the CLI renders
// them (a live view, plain lines or JSON) on stderr.
type Event struct {
	Kind     EventKind     `json:"kind"`
	Time     time.Time     `json:"time"`
	Stage    string        `json:"stage,omitempty"`
	Step     int           `json:"step,omitempty"`  // 1-based index within the stage
	Steps    int           `json:"steps,omitempty"` // number of steps in the stage
	Pos      string        `json:"pos,omitempty"`   // FILE:LINE of the step
	Action   string        `json:"action,omitempty"`
	Text     string        `json:"text,omitempty"` // the step's command, or the message
	Cached   bool          `json:"cached,omitempty"`
	Duration time.Duration `json:"duration_ns,omitempty"`
	Layer    *cache.Layer  `json:"layer,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// ProgressFunc receives progress events. It is called from the goroutine
// running the step; implementations must be safe for concurrent use when
// stages build in parallel.
type ProgressFunc func(Event)

// lineWriter splits a step's output into lines: each is sent as an output
// event and the last few are kept for the error message of a failed step.
type lineWriter struct {
	mu      sync.Mutex
	redact  []string // secrets' values, replaced by "****"
	emit    func(line string)
	partial bytes.Buffer
	tail    []string
	keep    int
}

func newLineWriter(keep int, redact []string, emit func(string)) *lineWriter {
	return &lineWriter{emit: emit, keep: keep, redact: redact}
}

func (w *lineWriter) Write(p []byte) (int, error) {
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

func (w *lineWriter) line(s string) {
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
func (w *lineWriter) Tail() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.partial.Len() > 0 {
		w.line(w.partial.String())
		w.partial.Reset()
	}
	return append([]string(nil), w.tail...)
}
