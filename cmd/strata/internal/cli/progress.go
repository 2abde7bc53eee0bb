package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/stratabuild/strata/build"
)

// newProgressWriter renders events onto w: "plain" writes a line per
// event, "json" one JSON object per line.
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
	return func(e build.Event) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = io.WriteString(w, plainLine(e))
	}
}

func plainLine(e build.Event) string {
	prefix := ""
	if e.Step > 0 {
		stage := ""
		if e.Stage != "" {
			stage = e.Stage + " "
		}
		prefix = fmt.Sprintf("[%s%d/%d] ", stage, e.Step, e.Steps)
	}
	switch e.Kind {
	case build.EventStart:
		return fmt.Sprintf("%s%s %s %s\n", prefix, e.Pos, e.Action, e.Text)
	case build.EventOutput:
		return fmt.Sprintf("%s  | %s\n", prefix, e.Text)
	case build.EventDone:
		status := fmt.Sprintf("done %s", e.Duration.Round(time.Millisecond))
		if e.Cached {
			status = "cached"
		}
		if e.Layer == nil {
			return fmt.Sprintf("%s%s %s: %s, no layer\n", prefix, e.Pos, e.Action, status)
		}
		return fmt.Sprintf("%s%s %s: %s, layer %s (+%d ~%d -%d files)\n", prefix, e.Pos, e.Action, status,
			humanSize(e.Layer.Size), e.Layer.Added, e.Layer.Modified, e.Layer.Deleted)
	case build.EventFailed:
		return fmt.Sprintf("%s%s %s: failed after %s\n", prefix, e.Pos, e.Action, e.Duration.Round(time.Millisecond))
	default:
		return prefix + e.Text + "\n"
	}
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
