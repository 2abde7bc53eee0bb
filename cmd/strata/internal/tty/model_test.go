package tty

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mattn/go-runewidth"

	"github.com/stratabuild/strata/build"
	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/internal/units"
)

// feed is a model given events, each 100ms after the last, from t0.
func feed(t0 time.Time, events ...build.Event) *model {
	m := newModel(t0, 6)
	for i, e := range events {
		e.Time = t0.Add(time.Duration(i+1) * 100 * time.Millisecond)
		m.add(e)
	}
	return &m
}

// doneStep is the done event of step i of stage, which made a layer still
// being compressed (no size yet), as a build reports it.
func doneStep(stage string, i, n int) build.Event {
	return build.Event{Kind: build.EventDone, Stage: stage, Step: i, Steps: n, Pos: "strata.yaml:" + strconv.Itoa(i), Action: "run",
		Duration: 1500 * time.Millisecond, Layer: &cache.Layer{Added: 1}}
}

// compressedLine is the info line a build emits once the layer of step i
// of stage is compressed: size bytes.
func compressedLine(stage string, i int, size int64) build.Event {
	pos := "strata.yaml:" + strconv.Itoa(i)
	return build.Event{Kind: build.EventInfo, Stage: stage, Pos: pos, Layer: &cache.Layer{Added: 1, Digest: "sha256:0", Size: size},
		Text: "layer of " + pos + " compressed: " + units.Bytes(size) + " in 3ms"}
}

// TestCompressedSizeOnStepRow: a step's row says "compressing" while its
// layer is compressed in the background, then the layer's size; the
// summary never shows a step as still compressing.
func TestCompressedSizeOnStepRow(t *testing.T) {
	t0 := time.Now()
	m := feed(t0,
		start("one", 1, 3, "make a"), doneStep("one", 1, 3),
		start("one", 2, 3, "make b"), doneStep("one", 2, 3),
		start("one", 3, 3, "make c"),
		compressedLine("one", 1, 107),
		compressedLine("one", 3, 2048), // before its done event
		doneStep("one", 3, 3),
	)
	now := t0.Add(time.Second)
	if got, want := m.live(now, 0, 0)[1:], []string{
		" => [one 1/3] run make a  107 B +1 ~0 -0  1.5s",
		" => [one 2/3] run make b  compressing +1 ~0 -0  1.5s",
		" => [one 3/3] run make c  2.0 KiB +1 ~0 -0  1.5s",
	}; !cmp.Equal(want, got) {
		t.Errorf("live frame (-want +got):\n%s", cmp.Diff(want, got))
	}
	// Step 2's layer is never compressed: the build failed meanwhile.
	if got, want := m.summary(now, 0)[1:], []string{
		" => [one 1/3] run make a  107 B +1 ~0 -0  1.5s",
		" => [one 2/3] run make b  +1 ~0 -0  1.5s",
		" => [one 3/3] run make c  2.0 KiB +1 ~0 -0  1.5s",
	}; !cmp.Equal(want, got) {
		t.Errorf("summary (-want +got):\n%s", cmp.Diff(want, got))
	}
}

// TestNarrowStepRow: on a narrow terminal a finished step's row leaves
// out its layer rather than cut its label to less than half the line.
func TestNarrowStepRow(t *testing.T) {
	t0 := time.Now()
	for _, tt := range []struct {
		width       int
		left, right string // the row's start and end
	}{
		{80, " => [builder 2/3] run make install ", " 1.2 MiB +123 ~45 -6  12.3s"},
		{53, " => [builder 2/3] run mak…", " 1.2 MiB +123 ~45 -6  12.3s"},
		{52, " => [builder 2/3] run make install ", " 12.3s"},
		{30, " => [builder 2/3] run m…", " 12.3s"},
	} {
		m := feed(t0, start("builder", 1, 3, "make"), start("builder", 2, 3, "make install"),
			build.Event{Kind: build.EventDone, Stage: "builder", Step: 2, Steps: 3, Action: "run", Duration: 12300 * time.Millisecond,
				Layer: &cache.Layer{Size: 1258291, Added: 123, Modified: 45, Deleted: 6}})
		got := m.summary(t0, tt.width)[2]
		if !strings.HasPrefix(got, tt.left) || !strings.HasSuffix(got, tt.right) || runewidth.StringWidth(got) != tt.width {
			t.Errorf("summary row at %d columns = %q, want %q…%q, %[1]d columns", tt.width, got, tt.left, tt.right)
		}
	}
}

// TestSummaryVerdict: the summary's header says how the build ended, as
// buildx's does: an interrupted build CANCELED (its running steps too),
// a failed one FAILED, even when no step failed (an output not written).
func TestSummaryVerdict(t *testing.T) {
	t0 := time.Now()
	for _, tt := range []struct {
		name   string
		events []build.Event
		err    error
		want   string // the header's end
		row    string // the step's row's start
	}{
		{"finished", []build.Event{start("", 1, 1, "make"), doneStep("", 1, 1)}, nil,
			"(1/1) FINISHED", " => [1/1] run make"},
		{"interrupted", []build.Event{start("", 1, 1, "make")}, fmt.Errorf("strata.yaml:1: %w", context.Canceled),
			"(1/1) CANCELED", " => CANCELED [1/1] run make"},
		{"interrupted, the step failed", []build.Event{start("", 1, 1, "make"),
			{Kind: build.EventFailed, Step: 1, Steps: 1, Action: "run", Error: "signal: interrupt"}}, context.Canceled,
			"(1/1) CANCELED", " => ERROR [1/1] run make"},
		{"a step failed", []build.Event{start("", 1, 1, "make"),
			{Kind: build.EventFailed, Step: 1, Steps: 1, Action: "run", Error: "exit status 2"}}, errors.New("exit status 2"),
			"(1/1) FAILED", " => ERROR [1/1] run make"},
		{"the output failed", []build.Event{start("", 1, 1, "make"), doneStep("", 1, 1)}, errors.New("writing out.tar: no space left on device"),
			"(1/1) FAILED", " => [1/1] run make"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := feed(t0, tt.events...)
			m.err = tt.err
			got := m.summary(t0.Add(time.Second), 0)
			if !strings.HasSuffix(got[0], tt.want) || !strings.HasPrefix(got[1], tt.row) {
				t.Errorf("summary begins %q, want a header ending %q, then %q…", got[:2], tt.want, tt.row)
			}
		})
	}
}

// TestBuildLinesAroundStages: lines about the build as a whole heard
// before any stage come first; those heard later, its result among them,
// come after every stage, as buildx's exporting steps do.
func TestBuildLinesAroundStages(t *testing.T) {
	t0 := time.Now()
	info := func(stage, text string) build.Event {
		return build.Event{Kind: build.EventInfo, Stage: stage, Text: text}
	}
	for _, tt := range []struct {
		name   string
		events []build.Event
		want   []string
	}{
		{"stages", []build.Event{
			info("", "build epoch 2026-12-01T19:12:39Z"),
			start("one", 1, 1, "make a"), start("two", 1, 1, "make b"),
			info("one", "1 layers unpacked in 5ms"),
			doneStep("two", 1, 1), compressedLine("two", 1, 107),
			info("", "waiting for cache mount go, used by another step"),
			doneStep("one", 1, 1), compressedLine("one", 1, 108),
			info("", "wrote type=oci,dest=out in 4ms"), info("", "image sha256:806f"),
		}, []string{
			" => build epoch 2026-12-01T19:12:39Z",
			" => [one 1/1] run make a  108 B +1 ~0 -0  1.5s",
			" => [one] 1 layers unpacked in 5ms",
			" => [two 1/1] run make b  107 B +1 ~0 -0  1.5s",
			" => waiting for cache mount go, used by another step",
			" => wrote type=oci,dest=out in 4ms",
			" => image sha256:806f",
		}},
		{"one unnamed stage", []build.Event{
			info("", "build epoch 2026-12-01T19:12:39Z"),
			start("", 1, 2, "make a"), info("", "1 layers unpacked in 5ms"),
			doneStep("", 1, 2), start("", 2, 2, "make b"), compressedLine("", 1, 107),
			doneStep("", 2, 2), compressedLine("", 2, 108),
			info("", "wrote type=oci,dest=out in 4ms"), info("", "image sha256:806f"),
		}, []string{
			" => build epoch 2026-12-01T19:12:39Z",
			" => [1/2] run make a  107 B +1 ~0 -0  1.5s",
			" => [2/2] run make b  108 B +1 ~0 -0  1.5s",
			" => 1 layers unpacked in 5ms",
			" => wrote type=oci,dest=out in 4ms",
			" => image sha256:806f",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := feed(t0, tt.events...)
			if got := m.summary(t0.Add(time.Second), 0)[1:]; !cmp.Equal(tt.want, got) {
				t.Errorf("summary (-want +got):\n%s", cmp.Diff(tt.want, got))
			}
		})
	}
}
