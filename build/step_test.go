package build

import (
	"strings"
	"testing"
)

// TestStepErrorTailIsPlain: the last lines of a failed step reach the
// terminal as progress shows them: no escape sequence, carriage return
// or other control character of the step's output.
func TestStepErrorTailIsPlain(t *testing.T) {
	e := &StepError{Pos: "strata.yaml:4", Step: 1, Command: "make", Status: 2,
		Tail: []string{"\x1b[1;31merror:\x1b[0m bad", "10%\r100%", "\x1b]0;title\x07ok\x1b[2J", "bell\x07 tab\there"}}
	got := e.Error()
	want := `strata.yaml:4: step 1: run exited with status 2
  command: make
  last lines of output:
    error: bad
    100%
    ok
    bell tab here`
	if got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if strings.ContainsAny(got, "\x1b\r\x07") {
		t.Errorf("Error() holds control characters: %q", got)
	}
}
