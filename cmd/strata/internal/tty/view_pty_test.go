package tty

import (
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/stratabuild/strata/build"
	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/internal/testutil"
)

// openPTY opens a pseudo-terminal of cols × rows and feeds what is
// written to its terminal end into a screen.
func openPTY(t *testing.T, cols, rows int) (*os.File, *testutil.Screen) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)}); err != nil {
		t.Fatal(err)
	}
	scr := testutil.NewScreen(cols, rows)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		scr.Feed(ptmx)
	}()
	t.Cleanup(func() {
		tty.Close()
		<-copied
		ptmx.Close()
	})
	return tty, scr
}

func contains(subs ...string) func([]string) bool {
	return func(rows []string) bool {
		for _, s := range subs {
			if testutil.RowIndex(rows, s) < 0 {
				return false
			}
		}
		return true
	}
}

func start(stage string, i, n int, text string) build.Event {
	return build.Event{Kind: build.EventStart, Stage: stage, Step: i, Steps: n, Action: "run", Text: text, Pos: "strata.yaml:" + strconv.Itoa(i)}
}

func output(stage string, i, n int, text string) build.Event {
	return build.Event{Kind: build.EventOutput, Stage: stage, Step: i, Steps: n, Action: "run", Text: text}
}

// TestViewOnPTY drives a View through a scripted build of two parallel
// stages on a real pseudo-terminal and reads the screen a VT100 emulator
// shows: timers advance while a step runs, the stages stay in blocks of
// their own, a finished step collapses to one line, a failure keeps its
// last output lines, lines are cut to the width.
func TestViewOnPTY(t *testing.T) {
	const cols, rows = 100, 40
	tty, scr := openPTY(t, cols, rows)
	v := New(tty, Options{})
	defer v.Close(nil)

	v.Event(build.Event{Kind: build.EventInfo, Stage: "left", Text: "base busybox resolved in 3ms"})
	v.Event(start("left", 1, 2, "sleep 3; make left"))
	v.Event(start("right", 1, 1, "make right"))
	v.Event(build.Event{Kind: build.EventInfo, Stage: "right", Step: 1, Steps: 1, Text: "cache miss: no earlier build of this step"})
	for i := 1; i <= 8; i++ {
		v.Event(output("left", 1, 2, "left line "+strconv.Itoa(i)))
		v.Event(output("right", 1, 1, "right line "+strconv.Itoa(i)))
	}
	v.Event(output("right", 1, 1, "x"+strings.Repeat("y", 300)+"\tz\x1b[31mred\x1b[0m"))

	first := scr.WaitFor(t, "both stages' last lines", 5*time.Second, contains("left line 8", "right line 8", "yyy"))
	if h := first[0]; !strings.HasPrefix(h, "[+] Building ") || !strings.HasSuffix(h, "(0/3)") {
		t.Errorf("header = %q, want [+] Building TIME (0/3)", h)
	}
	// Each stage is one block: its step, then its last 6 lines.
	leftStep, rightStep := testutil.RowIndex(first, "[left 1/2] run sleep 3; make left"), testutil.RowIndex(first, "[right 1/1] run make right")
	if leftStep < 0 || rightStep < leftStep {
		t.Fatalf("want the left block then the right block:\n%s", strings.Join(first, "\n"))
	}
	for _, r := range first[leftStep+1 : rightStep] {
		if strings.Contains(r, "right") {
			t.Errorf("a line of the right stage inside the left block: %q", r)
		}
	}
	if testutil.RowIndex(first, "left line 2") >= 0 || testutil.RowIndex(first, "left line 3") != leftStep+1 || testutil.RowIndex(first, "left line 8") != leftStep+6 {
		t.Errorf("want the last 6 lines of the left step right under it:\n%s", strings.Join(first, "\n"))
	}
	if testutil.RowIndex(first, "# cache miss: no earlier build") != rightStep+1 {
		t.Errorf("the cache miss note is not under the right step:\n%s", strings.Join(first, "\n"))
	}
	long := first[testutil.RowIndex(first, "xyyy")]
	if w := len([]rune(long)); w >= cols || !strings.HasSuffix(long, "…") {
		t.Errorf("long output line is %d columns (%q), want it cut below %d with …", w, long, cols)
	}
	if strings.Contains(strings.Join(first, "\n"), "[31m") {
		t.Error("escape sequences of the output reached the screen")
	}

	// Timers advance while the steps run.
	t1 := testutil.RowTimer(t, first, "[left 1/2]")
	time.Sleep(time.Second)
	second := scr.Rows()
	if t2 := testutil.RowTimer(t, second, "[left 1/2]"); t2-t1 < 0.8 || t2-t1 > 1.5 {
		t.Errorf("left step's timer went from %.1fs to %.1fs in 1s", t1, t2)
	}

	// The left step finishes: one line with its layer; the next starts
	// and is cached.
	v.Event(build.Event{Kind: build.EventDone, Stage: "left", Step: 1, Steps: 2, Action: "run", Duration: 3200 * time.Millisecond,
		Layer: &cache.Layer{Size: 2048, Added: 3, Modified: 1, Deleted: 2}})
	v.Event(start("left", 2, 2, "make install"))
	v.Event(build.Event{Kind: build.EventDone, Stage: "left", Step: 2, Steps: 2, Action: "run", Cached: true})
	done := scr.WaitFor(t, "the left stage collapsed", 5*time.Second, func(r []string) bool {
		return testutil.RowIndex(r, "left line") < 0 && testutil.RowIndex(r, "CACHED [left 2/2]") >= 0
	})
	if r := done[testutil.RowIndex(done, "[left 1/2]")]; !strings.HasSuffix(r, "2.0 KiB +3 ~1 -2  3.2s") {
		t.Errorf("finished step row = %q, want its layer and time", r)
	}
	if i := testutil.RowIndex(done, "[left 1/2]"); !strings.Contains(done[i+1], "CACHED [left 2/2] run make install") {
		t.Errorf("the finished step is not one line:\n%s", strings.Join(done, "\n"))
	}
	if h := done[0]; !strings.HasSuffix(h, "(2/3)") {
		t.Errorf("header = %q, want (2/3)", h)
	}

	// The right step fails; at the end the view collapses to the summary.
	v.Event(output("right", 1, 1, "boom"))
	v.Event(build.Event{Kind: build.EventFailed, Stage: "right", Step: 1, Steps: 1, Action: "run", Duration: 4 * time.Second, Error: "exit status 3"})
	v.Close(errors.New("strata.yaml:1: step \"make right\": run exited with status 3"))
	final := scr.WaitFor(t, "the summary", 5*time.Second, contains("FAILED"))
	want := []string{
		`^\[\+\] Building \d+\.\ds \(3/3\) FAILED$`,
		`^ => \[left\] base busybox resolved in 3ms$`,
		`^ => \[left 1/2\] run sleep 3; make left +2\.0 KiB \+3 ~1 -2  3\.2s$`,
		`^ => CACHED \[left 2/2\] run make install +0\.0s$`,
		`^ => ERROR \[right 1/1\] run make right +4\.0s$`,
		`^    \| right line 1$`,
	}
	for i, re := range want {
		if i >= len(final) || !regexp.MustCompile(re).MatchString(final[i]) {
			t.Errorf("summary row %d does not match %s:\n%s", i, re, strings.Join(final, "\n"))
		}
	}
	if i := testutil.RowIndex(final, "| boom"); i != len(want)-1+9 {
		t.Errorf("the failed step's last line is row %d, want %d (its last 10 lines under it):\n%s", i, len(want)+8, strings.Join(final, "\n"))
	}
	if n := strings.Count(strings.Join(final, "\n"), "[+] Building"); n != 1 {
		t.Errorf("%d headers on the screen, want 1:\n%s", n, strings.Join(final, "\n"))
	}
}

func TestIsTerminal(t *testing.T) {
	tty, _ := openPTY(t, 80, 24)
	if !IsTerminal(tty) {
		t.Error("IsTerminal(pty) = false")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if IsTerminal(w) {
		t.Error("IsTerminal(pipe) = true")
	}
}

// TestViewShorterThanTerminal: a build whose live view is taller than the
// terminal shrinks the view to fit, so redraws never scroll the header
// away and leave copies of it behind.
func TestViewShorterThanTerminal(t *testing.T) {
	const cols, rows = 60, 8
	tty, scr := openPTY(t, cols, rows)
	v := New(tty, Options{})
	defer v.Close(nil)
	for _, stage := range []string{"a", "b", "c"} {
		v.Event(build.Event{Kind: build.EventInfo, Stage: stage, Text: "base resolved"})
		v.Event(start(stage, 1, 1, "work "+stage))
		for i := 1; i <= 8; i++ {
			v.Event(output(stage, 1, 1, stage+" line "+strconv.Itoa(i)))
		}
	}
	for range 3 { // several redraws, each of which could scroll
		screen := scr.WaitFor(t, "every running step", 5*time.Second, contains("[a 1/1]", "[b 1/1]", "[c 1/1]", "c line 8"))
		if n := strings.Count(strings.Join(screen, "\n"), "[+] Building"); n != 1 || !strings.HasPrefix(screen[0], "[+] Building") {
			t.Fatalf("want one header, on the first row:\n%s", strings.Join(screen, "\n"))
		}
		time.Sleep(150 * time.Millisecond)
	}
	v.Event(build.Event{Kind: build.EventDone, Stage: "a", Step: 1, Steps: 1, Action: "run", Duration: time.Second})
	scr.WaitFor(t, "the finished step left out", 5*time.Second, func(r []string) bool {
		return testutil.RowIndex(r, "[a 1/1]") < 0 && testutil.RowIndex(r, "finished steps and messages not shown") >= 0
	})
}
