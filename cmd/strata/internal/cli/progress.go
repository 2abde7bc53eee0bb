package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/stratabuild/strata/build"
	"github.com/stratabuild/strata/cmd/strata/internal/tty"
	"github.com/stratabuild/strata/commit"
	"github.com/stratabuild/strata/internal/units"
)

// newProgressWriter renders events onto w: "plain" writes a line per
// event for logs (CI jobs, files, pipes), "json" one JSON object per line.
//
// A plain line starts with the seconds since the writer was made — the
// start of the build — right-aligned ("   1.25s "), and holds no control
// character: escape sequences are dropped, a carriage return keeps what a
// terminal would show (the text after it), tabs become spaces.
func newProgressWriter(w io.Writer, format string) func(build.Event) {
	var mu sync.Mutex
	if format == "json" {
		enc := json.NewEncoder(w)
		return func(e build.Event) {
			mu.Lock()
			defer mu.Unlock()
			_ = enc.Encode(e)
		}
	}
	start := time.Now()
	return func(e build.Event) {
		at := e.Time
		if at.IsZero() {
			at = time.Now()
		}
		line := fmt.Sprintf("%7.2fs %s\n", max(at.Sub(start), 0).Seconds(), plainLine(e))
		mu.Lock()
		defer mu.Unlock()
		_, _ = io.WriteString(w, line)
	}
}

// plainLine is the text of e's line: what the build reported passed
// through tty.PlainText.
func plainLine(e build.Event) string {
	e.Stage, e.Pos, e.Action, e.Text = tty.PlainText(e.Stage), tty.PlainText(e.Pos), tty.PlainText(e.Action), tty.PlainText(e.Text)
	prefix := ""
	if e.Step > 0 {
		stage := ""
		if e.Stage != "" {
			stage = e.Stage + " "
		}
		prefix = fmt.Sprintf("[%s%d/%d] ", stage, e.Step, e.Steps)
	} else if e.Stage != "" { // about a stage or a platform (its epoch)
		prefix = "[" + e.Stage + "] "
	}
	switch e.Kind {
	case build.EventStart:
		return fmt.Sprintf("%s%s %s %s", prefix, e.Pos, e.Action, e.Text)
	case build.EventOutput:
		return fmt.Sprintf("%s  | %s", prefix, e.Text)
	case build.EventDone:
		status := fmt.Sprintf("done %s%s", e.Duration.Round(time.Millisecond), timings(e.Timings))
		if e.Cached {
			status = "cached"
		}
		if e.Layer == nil {
			return fmt.Sprintf("%s%s %s: %s, no layer", prefix, e.Pos, e.Action, status)
		}
		size := units.Bytes(e.Layer.Size)
		if e.Layer.Compressing() {
			size = "being compressed" // its size comes in a later line
		}
		return fmt.Sprintf("%s%s %s: %s, layer %s (+%d ~%d -%d files)", prefix, e.Pos, e.Action, status,
			size, e.Layer.Added, e.Layer.Modified, e.Layer.Deleted)
	case build.EventFailed:
		return fmt.Sprintf("%s%s %s: failed after %s", prefix, e.Pos, e.Action, e.Duration.Round(time.Millisecond))
	case build.EventCanceled:
		return fmt.Sprintf("%s%s %s: canceled after %s", prefix, e.Pos, e.Action, e.Duration.Round(time.Millisecond))
	default:
		return prefix + e.Text
	}
}

// resultEvent is the last progress line of a successful build: the image
// digest and every reference it was pushed as ("image sha256:… pushed as
// REG/APP:1, REG/APP:latest"). stdout carries the digest alone.
func resultEvent(req Request, digest string) build.Event {
	text := "image " + digest
	for _, out := range req.Build.Outputs {
		if out.Type != commit.OutputRegistry {
			continue
		}
		refs := make([]string, len(req.Build.Tags))
		for i, t := range req.Build.Tags {
			refs[i] = t.String()
		}
		text += " pushed as " + strings.Join(refs, ", ")
		break
	}
	return build.Event{Kind: build.EventInfo, Time: time.Now(), Text: text}
}

// timings says where a step's time went: " (unpack 2.7s, run 11.9s,
// commit 2.1s)"; phases under a millisecond are left out.
func timings(t *build.Timings) string {
	if t == nil {
		return ""
	}
	var parts []string
	for _, p := range []struct {
		name string
		d    time.Duration
	}{{"unpack", t.Unpack}, {"run", t.Process}, {"commit", t.Commit}} {
		if p.d >= time.Millisecond {
			parts = append(parts, p.name+" "+p.d.Round(time.Millisecond).String())
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
