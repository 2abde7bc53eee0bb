package cli

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/stratabuild/strata/build"
	"github.com/stratabuild/strata/build/cache"
	"github.com/stratabuild/strata/commit"
)

// TestPlainProgress renders what a step reports, escape sequences and
// progress bars included, as a CI log shows it.
func TestPlainProgress(t *testing.T) {
	var out bytes.Buffer
	progress := newProgressWriter(&out, "plain")
	start := time.Now()
	at := func(d time.Duration) time.Time { return start.Add(d) }
	step := build.Event{Step: 1, Steps: 2, Pos: "strata.yaml:4", Action: "run"}
	with := func(e build.Event, kind build.EventKind, when time.Time, text string) build.Event {
		e.Kind, e.Time, e.Text = kind, when, text
		return e
	}
	progress(with(step, build.EventStart, at(10*time.Millisecond), "apt-get install -y curl"))
	progress(with(step, build.EventOutput, at(1500*time.Millisecond), "\x1b[1;32mGet:1\x1b[0m http://deb.debian.org bookworm\tInRelease"))
	progress(with(step, build.EventOutput, at(2*time.Second), "Progress: [ 10%]\rProgress: [ 60%]\rProgress: [100%]\r"))
	progress(with(step, build.EventOutput, at(2100*time.Millisecond), "\x1b]0;title\x07bell\x07 nul\x00 c1\u0085 bad\xff utf-8 ✓"))
	done := with(step, build.EventDone, at(12345*time.Millisecond), "")
	done.Duration, done.Layer = 12335*time.Millisecond, &cache.Layer{Size: 3 << 20, Added: 10, Modified: 2, Deleted: 1}
	progress(done)
	progress(build.Event{Kind: build.EventInfo, Text: "wrote type=registry in 56ms"}) // no Time: now
	req := Request{Build: build.Options{
		Outputs: []commit.Output{{Type: commit.OutputOCI, Dest: "out"}, {Type: commit.OutputRegistry}},
		Tags:    []name.Tag{name.MustParseReference("127.0.0.1:5000/app:1").(name.Tag), name.MustParseReference("127.0.0.1:5000/app:latest").(name.Tag)},
	}}
	progress(resultEvent(req, digest))

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		`   0.0\ds \[1/2\] strata\.yaml:4 run apt-get install -y curl`,
		`   1.5\ds \[1/2\]   \| Get:1 http://deb\.debian\.org bookworm InRelease`,
		`   2.0\ds \[1/2\]   \| Progress: \[100%\]`,
		`   2.1\ds \[1/2\]   \| bell nul c1 bad\x{FFFD} utf-8 ✓`,
		`  12.3\ds \[1/2\] strata\.yaml:4 run: done 12\.335s, layer 3\.0 MiB \(\+10 ~2 -1 files\)`,
		`   \d\.\d\ds wrote type=registry in 56ms`,
		`   \d\.\d\ds image ` + digest + ` pushed as 127\.0\.0\.1:5000/app:1, 127\.0\.0\.1:5000/app:latest`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, line := range lines {
		if !regexp.MustCompile("^" + want[i] + "$").MatchString(line) {
			t.Errorf("line %d = %q, want it to match %q", i+1, line, want[i])
		}
		for _, r := range line {
			if unicode.IsControl(r) {
				t.Errorf("line %d holds control character %U: %q", i+1, r, line)
			}
		}
	}
}

// TestResultEventWithoutPush names the digest alone when nothing is pushed.
func TestResultEventWithoutPush(t *testing.T) {
	req := Request{Build: build.Options{
		Outputs: []commit.Output{{Type: commit.OutputOCI, Dest: "out"}},
		Tags:    []name.Tag{name.MustParseReference("app:1").(name.Tag)},
	}}
	if got, want := resultEvent(req, digest).Text, "image "+digest; got != want {
		t.Errorf("resultEvent(no push) = %q, want %q", got, want)
	}
}
