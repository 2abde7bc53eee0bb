package main_test

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/stratabuild/strata/internal/testutil"
)

// TestLiveProgressOnTerminal runs `strata build --progress auto` with its
// stderr on a pseudo-terminal and reads the screen through a VT100
// emulator: two parallel stages each get a block with a running timer
// and their last output lines, finished steps collapse to one line, and
// the failing last step keeps its last output lines in the summary.
func TestLiveProgressOnTerminal(t *testing.T) {
	requireBuildTools(t)
	loop := func(name string) string {
		return "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo " + name + " $i; sleep 0.25; done; echo " + name + " > /" + name
	}
	ctx := writeRecipe(t, `args: {BASE: scratch}
stages:
  - name: left
    from: ${BASE}
    steps:
      - run: `+loop("left")+`
  - name: right
    from: ${BASE}
    steps:
      - run: `+loop("right")+`
  - name: both
    from: ${BASE}
    steps:
      - copy: /left
        from: left
        to: /left
      - copy: /right
        from: right
        to: /right
      - run: echo oops-1; echo oops-2; exit 3
`, map[string]string{})
	cmd := exec.Command(strataBin, "build", "--root", t.TempDir(), "--build-arg", busyboxBase(t), "--progress", "auto", ctx)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 120, Rows: 60})
	if err != nil {
		t.Fatal(err)
	}
	scr := testutil.NewScreen(120, 60)
	copied := make(chan struct{})
	go func() { defer close(copied); scr.Feed(ptmx) }()
	defer func() { _ = cmd.Process.Kill(); <-copied; ptmx.Close() }()

	running := scr.WaitFor(t, "both stages running", 60*time.Second, func(r []string) bool {
		return testutil.RowIndex(r, "left 3") >= 0 && testutil.RowIndex(r, "right 3") >= 0
	})
	if !strings.HasPrefix(running[0], "[+] Building ") {
		t.Errorf("first row = %q, want the [+] Building header", running[0])
	}
	l, r := testutil.RowIndex(running, "[left 1/1]"), testutil.RowIndex(running, "[right 1/1]")
	if l < 0 || r < 0 {
		t.Fatalf("no row per stage's step:\n%s", strings.Join(running, "\n"))
	}
	first, second := min(l, r), max(l, r)
	other := map[int]string{l: "right ", r: "left "}
	for i := first + 1; i < second; i++ {
		if strings.Contains(running[i], other[first]) {
			t.Errorf("row %d %q of the other stage inside the first block:\n%s", i, running[i], strings.Join(running, "\n"))
		}
	}
	t1 := testutil.RowTimer(t, running, "[left 1/1]")
	time.Sleep(time.Second)
	if t2 := testutil.RowTimer(t, scr.Rows(), "[left 1/1]"); t2-t1 < 0.7 {
		t.Errorf("the left step's timer went from %.1fs to %.1fs in 1s", t1, t2)
	}

	err = cmd.Wait()
	<-copied
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %v, want 1\n%s", err, strings.Join(scr.Rows(), "\n"))
	}
	final := scr.Rows()
	t.Logf("final screen:\n%s", strings.Join(final, "\n"))
	if n := strings.Count(strings.Join(final, "\n"), "[+] Building"); n != 1 || !strings.Contains(final[0], "FAILED") {
		t.Errorf("want one header, FAILED, on the first row")
	}
	for _, step := range []string{"[left 1/1]", "[right 1/1]", "[both 1/3]", "[both 2/3]"} {
		i := testutil.RowIndex(final, step)
		if i < 0 || i+1 >= len(final) || strings.HasPrefix(final[i+1], "    ") {
			t.Errorf("finished step %s is not one line in the summary", step)
		}
	}
	e := testutil.RowIndex(final, "ERROR [both 3/3]")
	if e < 0 || !strings.HasSuffix(final[e+1], "| oops-1") || !strings.HasSuffix(final[e+2], "| oops-2") {
		t.Errorf("the failed step is not followed by its last output lines")
	}
}

// TestLiveProgressSummaryOfMultiStageBuild builds two stages on a
// pseudo-terminal and reads the summary: every step that made a layer is
// done, one line with its layer's compressed size (no "compressing"
// left from when it finished, no line of its own for the size); the
// build's result lines come last, after every stage.
func TestLiveProgressSummaryOfMultiStageBuild(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, `args: {BASE: scratch}
stages:
  - name: one
    from: ${BASE}
    steps:
      - run: echo one > /one
      - run: echo more > /more
  - name: two
    from: ${BASE}
    steps:
      - copy: /one
        from: one
        to: /one
      - run: cat /one > /two
`, map[string]string{})
	final := buildOnPTY(t, 100, "build", "--root", t.TempDir(), "--build-arg", busyboxBase(t), "--no-cache",
		"-o", "type=oci,dest="+t.TempDir()+"/out", ctx)
	screen := strings.Join(final, "\n")
	if !strings.HasPrefix(final[0], "[+] Building ") || !strings.HasSuffix(final[0], "(4/4) FINISHED") {
		t.Errorf("header = %q, want [+] Building TIME (4/4) FINISHED", final[0])
	}
	done := regexp.MustCompile(` \d+ B \+1 ~0 -0  \d+\.\ds$`)
	for _, step := range []string{"[one 1/2]", "[one 2/2]", "[two 1/2]", "[two 2/2]"} {
		if i := testutil.RowIndex(final, step); i < 0 || !done.MatchString(final[i]) {
			t.Errorf("step %s is not one line done with its layer's size:\n%s", step, screen)
		}
	}
	if strings.Contains(screen, "compress") {
		t.Errorf("the summary still speaks of compression:\n%s", screen)
	}
	wrote, image := testutil.RowIndex(final, " => wrote type=oci"), testutil.RowIndex(final, " => image sha256:")
	last := max(testutil.RowIndex(final, "[one 2/2]"), testutil.RowIndex(final, "[two 2/2]"))
	if wrote <= last || image != wrote+1 || strings.TrimSpace(strings.Join(final[image+1:], "")) != "" {
		t.Errorf("want the wrote and image lines last, after every stage:\n%s", screen)
	}
}

// buildOnPTY runs strata with args, its stderr on a pseudo-terminal of
// cols × 40, and returns the screen once it has exited 0.
func buildOnPTY(t *testing.T, cols int, args ...string) []string {
	t.Helper()
	cmd := exec.Command(strataBin, args...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: uint16(cols), Rows: 40})
	if err != nil {
		t.Fatal(err)
	}
	scr := testutil.NewScreen(cols, 40)
	copied := make(chan struct{})
	go func() { defer close(copied); scr.Feed(ptmx) }()
	err = cmd.Wait()
	<-copied
	ptmx.Close()
	rows := scr.Rows()
	if err != nil {
		t.Fatalf("exit %v\n%s", err, strings.Join(rows, "\n"))
	}
	t.Logf("final screen:\n%s", strings.Join(rows, "\n"))
	return rows
}

// TestLiveProgressInterrupted presses ^C on the terminal of a build
// whose step sleeps: the summary's header says the build was CANCELED,
// as is the step, and strata exits 1.
func TestLiveProgressInterrupted(t *testing.T) {
	requireBuildTools(t)
	ctx := writeRecipe(t, `args: {BASE: scratch}
from: ${BASE}
steps:
  - run: echo sleeping; sleep 60
`, map[string]string{})
	cmd := exec.Command(strataBin, "build", "--root", t.TempDir(), "--build-arg", busyboxBase(t), "--no-cache", ctx)
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 100, Rows: 40})
	if err != nil {
		t.Fatal(err)
	}
	scr := testutil.NewScreen(100, 40)
	copied := make(chan struct{})
	go func() { defer close(copied); scr.Feed(ptmx) }()
	defer func() { _ = cmd.Process.Kill(); <-copied; ptmx.Close() }()

	scr.WaitFor(t, "the step running", 60*time.Second, func(r []string) bool { return testutil.RowIndex(r, "| sleeping") >= 0 })
	if _, err := ptmx.Write([]byte{0x03}); err != nil { // ^C: the terminal sends SIGINT
		t.Fatal(err)
	}
	err = cmd.Wait()
	<-copied
	final := scr.Rows()
	t.Logf("final screen:\n%s", strings.Join(final, "\n"))
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit %v, want 1", err)
	}
	if !strings.HasPrefix(final[0], "[+] Building ") || !strings.HasSuffix(final[0], " CANCELED") {
		t.Errorf("header = %q, want [+] Building TIME (1/1) CANCELED", final[0])
	}
	if testutil.RowIndex(final, "CANCELED [1/1] run echo sleeping; sleep 60") < 0 {
		t.Errorf("the step is not shown CANCELED")
	}
}
