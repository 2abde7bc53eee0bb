package tty

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/stratabuild/strata/build"
)

// Options tunes a View; the zero value is what the CLI wants.
type Options struct {
	// Width and Height override the terminal's size in columns and rows
	// (0: ask the terminal w is, at every redraw; if w is none, lines are
	// not cut and the view is not limited in height).
	Width, Height int
	// Interval is the time between redraws (default 100ms).
	Interval time.Duration
	// OutputLines is how many of a running step's last output lines are
	// shown under it (default 6). A failed step keeps at least 10.
	OutputLines int
}

// View is a live terminal view of one build. Its methods are safe for
// concurrent use.
type View struct {
	w    io.Writer
	o    Options
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	model  model
	drawn  int    // lines of the last frame, which the next one overwrites
	last   []byte // the last frame, not written again if unchanged
	closed bool
}

// New starts a view drawing on w, a terminal, redrawn from a goroutine
// until Close.
func New(w io.Writer, o Options) *View {
	if o.Interval <= 0 {
		o.Interval = 100 * time.Millisecond
	}
	if o.OutputLines <= 0 {
		o.OutputLines = 6
	}
	v := &View{
		w: w, o: o,
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
		model: newModel(time.Now(), o.OutputLines),
	}
	_, _ = io.WriteString(w, hideCursor)
	go v.loop()
	return v
}

// Event records one progress event; the next redraw shows it. It is a
// build.ProgressFunc.
func (v *View) Event(e build.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.closed {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	v.model.add(e)
}

// Close stops the redraws and replaces the live view with the build's
// summary: one line per step with its time and result, a failed step
// followed by its last output lines. err is the build's error: nil if it
// succeeded, context.Canceled (wrapped or not) if it was interrupted; the
// summary's header ends FINISHED, FAILED or CANCELED accordingly.
func (v *View) Close(err error) {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return
	}
	v.closed = true
	v.mu.Unlock()
	close(v.stop)
	<-v.done
	v.mu.Lock()
	v.model.err = err
	frame := v.frame(time.Now(), true)
	v.mu.Unlock()
	_, _ = v.w.Write(append(frame, showCursor...))
}

func (v *View) loop() {
	defer close(v.done)
	t := time.NewTicker(v.o.Interval)
	defer t.Stop()
	for {
		v.mu.Lock()
		frame := v.frame(time.Now(), false)
		v.mu.Unlock()
		// Only this goroutine writes until it returns, so a slow terminal
		// holds up the redraws, never the build's Event calls.
		_, _ = v.w.Write(frame)
		select {
		case <-v.stop:
			return
		case <-t.C:
		}
	}
}

// ANSI sequences: cursor up n lines to column 1, erase the line, erase
// from the cursor to the end of the screen, hide and show the cursor.
const (
	cursorUp   = "\r\x1b[%dA"
	eraseLine  = "\x1b[2K"
	eraseBelow = "\x1b[J"
	hideCursor = "\x1b[?25l"
	showCursor = "\x1b[?25h"
)

// frame is what overwrites the last frame with the current one (nothing
// if they are the same). Lines are cut one column short of the width, so
// none wraps and the count of lines drawn is the count to move up; the
// live frame stays below the terminal's height for the same reason.
func (v *View) frame(now time.Time, final bool) []byte {
	width, height := v.o.Width, v.o.Height
	if width == 0 || height == 0 {
		tw, th := termSize(v.w)
		width, height = cmp.Or(width, tw), cmp.Or(height, th)
	}
	var lines []string
	if final {
		lines = v.model.summary(now, width-1)
	} else {
		lines = v.model.live(now, width-1, height-1)
	}
	var b bytes.Buffer
	if v.drawn > 0 {
		fmt.Fprintf(&b, cursorUp, v.drawn)
	}
	for _, l := range lines {
		b.WriteString(eraseLine + l + "\n")
	}
	b.WriteString(eraseBelow)
	if !final && bytes.Equal(b.Bytes(), v.last) {
		return nil
	}
	v.last = b.Bytes()
	v.drawn = len(lines)
	return b.Bytes()
}
