package tty

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mattn/go-runewidth"

	"github.com/stratabuild/strata/build"
	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/internal/units"
)

// model is what the view knows of the build: its stages, in the order
// they were first heard of, each a block of rows, between the lines
// about the build as a whole heard before any stage (head) and after
// (tail: its result, "wrote …", "image sha256:…", comes last, as
// buildx's exporting steps do).
type model struct {
	start      time.Time
	keep       int // output lines shown under a running step
	head, tail block
	stages     []*block
	steps      map[stepKey]*step
	err        error // how the build ended, once it has (View.Close)
}

type stepKey struct {
	stage string
	index int
}

// block is one stage's rows: its steps and the info lines about it; or
// lines about the build.
type block struct {
	stage string
	steps int // the stage's number of steps
	rows  []row
}

// row is a step or an info line.
type row struct {
	step *step
	info string
}

type stepState int

const (
	running stepState = iota
	done
	cached
	failed
	canceled // still running when the view closed
)

type step struct {
	key    stepKey
	steps  int
	pos    string // FILE:LINE, which names the step in the line saying its layer is compressed
	action string
	text   string
	state  stepState
	start  time.Time
	dur    time.Duration
	layer  *cache.Layer
	// size is the layer's size as shown ("2.0 KiB"): known when the
	// step is done, or once its layer is compressed (compressing until
	// then).
	size        string
	compressing bool
	out         []string // the last output lines
	notes       []string // info about the step (cache hit or miss), shown while it runs
}

// failedLines is how many output lines a failed step keeps at least.
const failedLines = 10

func newModel(start time.Time, keep int) model {
	return model{start: start, keep: keep, steps: map[stepKey]*step{}}
}

// blocks is every block, in the order shown.
func (m *model) blocks() []*block {
	return append(append([]*block{&m.head}, m.stages...), &m.tail)
}

// block is the block e goes in: its stage's, made the first time; for a
// line about the build (no stage, no step), the head until a stage is
// heard of, the tail after. (An unnamed stage's lines about itself, not
// a step, look the same: they go there too.)
func (m *model) block(e build.Event) *block {
	if e.Stage == "" && e.Step == 0 {
		if len(m.stages) == 0 {
			return &m.head
		}
		return &m.tail
	}
	if b := m.stage(e.Stage); b != nil {
		return b
	}
	b := &block{stage: e.Stage}
	m.stages = append(m.stages, b)
	return b
}

// stage is the block of the stage named name, nil if it is not known.
func (m *model) stage(name string) *block {
	for _, b := range m.stages {
		if b.stage == name {
			return b
		}
	}
	return nil
}

// add records one event.
func (m *model) add(e build.Event) {
	if b := m.stage(e.Stage); e.Kind == build.EventInfo && e.Step == 0 && b != nil && b.compressed(e) {
		return // the step's row shows the size
	}
	b := m.block(e)
	if e.Steps > 0 {
		b.steps = e.Steps
	}
	k := stepKey{e.Stage, e.Step}
	s := m.steps[k]
	switch {
	case e.Kind == build.EventStart && e.Step > 0:
		s = &step{key: k, steps: e.Steps, pos: e.Pos, action: e.Action, text: PlainText(e.Text), start: e.Time}
		m.steps[k] = s
		b.rows = append(b.rows, row{step: s})
	case s == nil || e.Step == 0:
		if e.Kind == build.EventInfo || e.Kind == build.EventFailed {
			b.rows = append(b.rows, row{info: infoLabel(e.Stage) + PlainText(e.Text+e.Error)})
		}
	case e.Kind == build.EventOutput:
		s.out = append(s.out, PlainText(e.Text))
		if n := max(m.keep, failedLines); len(s.out) > n {
			s.out = s.out[len(s.out)-n:]
		}
	case e.Kind == build.EventInfo:
		s.notes = append(s.notes, PlainText(e.Text))
	case e.Kind == build.EventDone:
		s.state, s.dur, s.layer = done, e.Duration, e.Layer
		if e.Cached {
			s.state = cached
		}
		switch {
		case e.Layer == nil || s.size != "": // no layer, or compressed already
		case e.Layer.Compressing():
			s.compressing = true
		default:
			s.size = units.Bytes(e.Layer.Size)
		}
	case e.Kind == build.EventFailed:
		s.state, s.dur = failed, e.Duration
	case e.Kind == build.EventCanceled:
		s.state, s.dur = canceled, e.Duration
	}
}

// compressed gives the size of e's layer — e the line a build emits
// about a stage once the layer of the step at e.Pos is compressed — to
// the block's step at e.Pos, and says whether one was there.
func (b *block) compressed(e build.Event) bool {
	if e.Pos == "" || e.Layer == nil || e.Layer.Compressing() {
		return false
	}
	for _, r := range b.rows {
		if s := r.step; s != nil && s.pos == e.Pos {
			s.size, s.compressing = units.Bytes(e.Layer.Size), false
			return true
		}
	}
	return false
}

// infoLabel is "[stage] " for an info line about a stage.
func infoLabel(stage string) string {
	if stage == "" {
		return ""
	}
	return "[" + stage + "] "
}

// counts is the number of steps finished (done, cached or failed) and of
// steps known, from the stages heard of so far.
func (m *model) counts() (finished, total int) {
	for _, b := range m.blocks() {
		total += b.steps
	}
	for _, s := range m.steps {
		if s.state != running {
			finished++
		}
	}
	return finished, total
}

func (m *model) header(now time.Time, suffix string) string {
	finished, total := m.counts()
	return strings.TrimSpace(fmt.Sprintf("[+] Building %s (%d/%d) %s", seconds(now.Sub(m.start)), finished, total, suffix))
}

// live is the frame drawn while the build runs, at most height lines
// (height <= 0: no limit). If the whole does not fit, the output windows
// shrink to one line, then finished steps and info lines are left out.
func (m *model) live(now time.Time, width, height int) []string {
	lines := m.frame(now, width, m.keep, true)
	if height > 0 && len(lines) > height {
		lines = m.frame(now, width, 1, true)
	}
	if height > 0 && len(lines) > height {
		lines = m.frame(now, width, 1, false)
	}
	if height > 0 && len(lines) > height {
		lines = lines[:height]
	}
	return lines
}

// frame is the header and every block: each step on one line, a running
// step followed by its notes and last out output lines, a failed step by
// its last output lines. Without finished, rows of finished steps and
// info lines are counted in one line instead.
func (m *model) frame(now time.Time, width, out int, finished bool) []string {
	lines := []string{fit(m.header(now, ""), width)}
	hidden := 0
	for _, b := range m.blocks() {
		for _, r := range b.rows {
			if !finished && (r.step == nil || r.step.state != running) {
				hidden++
				continue
			}
			lines = append(lines, m.rowLines(r, now, width, out)...)
		}
	}
	if hidden > 0 {
		lines = append(lines, fit(fmt.Sprintf(" => … %d finished steps and messages not shown", hidden), width))
	}
	return lines
}

// summary is the final frame: a line per step and info, the failed
// step's last output lines under it.
func (m *model) summary(now time.Time, width int) []string {
	for _, s := range m.steps {
		if s.state == running {
			s.state, s.dur = canceled, now.Sub(s.start)
		}
		s.compressing = false // the build is over: its layer is compressed, or never will be
	}
	lines := []string{fit(m.header(now, m.verdict()), width)}
	for _, b := range m.blocks() {
		for _, r := range b.rows {
			lines = append(lines, m.rowLines(r, now, width, 0)...)
		}
	}
	return lines
}

// verdict is the summary header's last word, as buildx's: CANCELED if
// the build was interrupted, FAILED if it failed (or a step did),
// FINISHED if it succeeded.
func (m *model) verdict() string {
	switch {
	case errors.Is(m.err, context.Canceled):
		return "CANCELED"
	case m.err != nil:
		return "FAILED"
	}
	for _, s := range m.steps {
		if s.state == failed {
			return "FAILED"
		}
	}
	return "FINISHED"
}

// rowLines is a row's line, and the output lines shown under it: the
// last out of a running step, the last failedLines of a failed one.
func (m *model) rowLines(r row, now time.Time, width, out int) []string {
	if r.step == nil {
		return []string{fit(" => "+r.info, width)}
	}
	s := r.step
	lines := []string{s.line(now, width)}
	var tail []string
	switch s.state {
	case running:
		for _, n := range s.notes {
			lines = append(lines, fit("    # "+n, width))
		}
		tail = s.out[max(0, len(s.out)-out):]
	case failed:
		tail = s.out
	}
	for _, l := range tail {
		lines = append(lines, fit("    | "+l, width))
	}
	return lines
}

// line is the step's line: its label, and its status at the end. When
// the full status would leave the label less than half the width, or
// cut its "[stage 2/3]", the status is the time alone.
func (s *step) line(now time.Time, width int) string {
	left, right := " => "+s.label(), s.status(now)
	room := width - runewidth.StringWidth(right) - 1
	if width > 0 && (room < width/2 || room < runewidth.StringWidth(" => "+s.tag())+2) { // +2: a space and …
		right = s.timer(now)
	}
	return leftRight(left, right, width)
}

// label is "CACHED [stage 2/3] run make" and the like.
func (s *step) label() string {
	return fmt.Sprintf("%s %s %s", s.tag(), s.action, s.text)
}

// tag is "CACHED [stage 2/3]" and the like: the state and the position.
func (s *step) tag() string {
	mark := ""
	switch s.state {
	case cached:
		mark = "CACHED "
	case failed:
		mark = "ERROR "
	case canceled:
		mark = "CANCELED "
	}
	stage := ""
	if s.key.stage != "" {
		stage = s.key.stage + " "
	}
	return fmt.Sprintf("%s[%s%d/%d]", mark, stage, s.key.index, s.steps)
}

// status is the right-hand side: the timer of a running step, the
// layer and time of a finished one.
func (s *step) status(now time.Time) string {
	if s.state != done || s.layer == nil {
		return s.timer(now)
	}
	size := s.size
	if s.compressing {
		size = "compressing" // in the background
	}
	return strings.TrimSpace(fmt.Sprintf("%s +%d ~%d -%d  %s", size, s.layer.Added, s.layer.Modified, s.layer.Deleted, s.timer(now)))
}

// timer is the time a step has run, or took.
func (s *step) timer(now time.Time) string {
	if s.state == running {
		return seconds(now.Sub(s.start))
	}
	return seconds(s.dur)
}
