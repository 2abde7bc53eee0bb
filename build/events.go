package build

import (
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
	// EventCanceled: a step stopped because the build was (another step
	// failed, or it was interrupted), not of its own doing.
	EventCanceled EventKind = "canceled"
	EventInfo     EventKind = "info" // anything else worth a line: pulls, pushes, outputs
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
	// Layer is a done step's layer: its counts and, while it is being
	// compressed, no digest or size yet; no diffID either in a build
	// that learns diffIDs as layers are compressed (no cache lookup can
	// hit: --no-cache, an empty cache). The build's result has them all.
	Layer   *cache.Layer `json:"layer,omitempty"`
	Timings *Timings     `json:"timings,omitempty"` // where a done step's time went
	Error   string       `json:"error,omitempty"`
}

// Timings say where a step that ran spent its time.
type Timings struct {
	// Unpack is the time spent unpacking base layers the step runs on
	// (the first step on a new base pays it).
	Unpack time.Duration `json:"unpack_ns,omitempty"`
	// Process is the step's process (or copy) from mount to exit.
	Process time.Duration `json:"process_ns,omitempty"`
	// Diff is the upper dir's diff into a tar, hashed as it is written
	// (its diffID) — or only its trim, when no cache lookup needs the
	// diffID before the layer is compressed; Commit, which includes it,
	// ends when the snapshot is stored: the next step starts then.
	Diff   time.Duration `json:"diff_ns,omitempty"`
	Commit time.Duration `json:"commit_ns,omitempty"`
	// Compress is the layer's compression into its blob (its tar written
	// again from the snapshot), in the background while the next steps
	// run, and beside another layer's (two are compressed at once, so the
	// layers' times can add up to more than the build's). Known once the
	// build's layers are all compressed: it is in the build's result, not
	// in the step's done event.
	Compress time.Duration `json:"compress_ns,omitempty"`
}

// ProgressFunc receives progress events. The build calls it from its
// goroutines (stages build in parallel and layers compress in the
// background), one call at a time.
type ProgressFunc func(Event)
