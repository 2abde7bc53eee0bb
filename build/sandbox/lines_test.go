package sandbox

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLines(t *testing.T) {
	var lines []string
	w := NewLines(3, []string{"hunter2"}, func(s string) { lines = append(lines, s) })
	for _, chunk := range []string{"one\ntw", "o\r\nthree hunter2\nfour\n", "five"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"three ****", "four", "five"}, w.Tail()); diff != "" {
		t.Errorf("Tail() (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"one", "two", "three ****", "four", "five"}, lines); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

// TestLinesLong: a line longer than MaxLine is cut there and marked, in
// the lines passed on and in the tail; a secret across the cut is still
// redacted whole; a cut never splits a UTF-8 character.
func TestLinesLong(t *testing.T) {
	const secret = "hunter2-secret"
	for _, tc := range []struct {
		name, line, want string
	}{
		{"short", "abc", "abc"},
		{"at the limit", strings.Repeat("a", MaxLine), strings.Repeat("a", MaxLine)},
		{"past the limit", strings.Repeat("a", MaxLine+1),
			strings.Repeat("a", MaxLine) + fmt.Sprintf(" … [line cut: %d bytes]", MaxLine+1)},
		{"secret across the cut", strings.Repeat("a", MaxLine-3) + secret + "bbb",
			strings.Repeat("a", MaxLine-3) + "**** … [line cut: 65550 bytes]"},
		{"secret after the cut", strings.Repeat("a", MaxLine) + secret + strings.Repeat("b", 10),
			strings.Repeat("a", MaxLine) + " … [line cut: 65560 bytes]"},
		{"secret before the cut", secret + strings.Repeat("a", MaxLine),
			"****" + strings.Repeat("a", MaxLine-len(secret)) + " … [line cut: 65550 bytes]"},
		{"utf-8 at the cut", strings.Repeat("a", MaxLine-1) + "é" + "z",
			strings.Repeat("a", MaxLine-1) + " … [line cut: 65538 bytes]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var lines []string
			w := NewLines(3, []string{secret}, func(s string) { lines = append(lines, s) })
			// In small writes, as a pipe delivers them.
			for p := []byte(tc.line + "\n" + tc.line); len(p) > 0; {
				n := min(len(p), 4096)
				if _, err := w.Write(p[:n]); err != nil {
					t.Fatal(err)
				}
				p = p[n:]
			}
			want := []string{tc.want, tc.want}
			if diff := cmp.Diff(want, w.Tail()); diff != "" {
				t.Errorf("Tail() (-want +got):\n%.500s", diff)
			}
			if diff := cmp.Diff(want, lines); diff != "" {
				t.Errorf("lines (-want +got):\n%.500s", diff)
			}
		})
	}
}

// TestLinesHugeLine: 100 MB with no newline, written as a pipe delivers
// it, takes each byte once: well under a second, not the quadratic
// rescan of the whole unfinished line on every write.
func TestLinesHugeLine(t *testing.T) {
	w := NewLines(20, nil, nil)
	chunk := bytes.Repeat([]byte("a"), 32<<10)
	start := time.Now()
	for range 100 << 20 / len(chunk) {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	tail := w.Tail()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("100 MB in one line took %s", took)
	}
	if want := fmt.Sprintf(" … [line cut: %d bytes]", 100<<20); len(tail) != 1 || !strings.HasSuffix(tail[0], want) || len(tail[0]) != MaxLine+len(want) {
		t.Errorf("Tail() = %d lines, the last %d bytes ending %q, want one of %d ending %q", len(tail), len(tail[len(tail)-1]), tail[len(tail)-1][max(0, len(tail[len(tail)-1])-40):], MaxLine+len(want), want)
	}
}
