package tty

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mattn/go-runewidth"

	"github.com/stratabuild/strata/build"
	"github.com/stratabuild/strata/build/cache"
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
// of stage is compressed.
func compressedLine(stage string, i int, size string) build.Event {
	return build.Event{Kind: build.EventInfo, Stage: stage, Text: "layer of strata.yaml:" + strconv.Itoa(i) + " compressed: " + size + " in 3ms"}
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
		compressedLine("one", 1, "107 B"),
		compressedLine("one", 3, "2.0 KiB"), // before its done event
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
