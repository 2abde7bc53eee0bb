package testutil

import (
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charmbracelet/x/vt"
)

// Screen is what a VT100 emulator shows of everything read from a
// pseudo-terminal: what a user of the live progress view sees.
type Screen struct {
	mu  sync.Mutex
	emu *vt.Emulator
}

// NewScreen returns an empty screen of cols × rows.
func NewScreen(cols, rows int) *Screen {
	return &Screen{emu: vt.NewEmulator(cols, rows)}
}

// Feed copies r into the emulator until r fails (EIO once the terminal
// end is closed).
func (s *Screen) Feed(r io.Reader) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		s.mu.Lock()
		_, _ = s.emu.Write(buf[:n])
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Rows is the screen, one string per row, trailing blanks trimmed.
func (s *Screen) Rows() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := strings.Split(s.emu.String(), "\n")
	for i, r := range rows {
		rows[i] = strings.TrimRight(r, " ")
	}
	return rows
}

// WaitFor polls the screen until ok holds and returns its rows; after
// within it fails the test, showing the screen.
func (s *Screen) WaitFor(t testing.TB, what string, within time.Duration, ok func([]string) bool) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		rows := s.Rows()
		if ok(rows) {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("the screen never showed %s:\n%s", what, strings.Join(rows, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RowIndex is the first row containing sub, or -1.
func RowIndex(rows []string, sub string) int {
	for i, r := range rows {
		if strings.Contains(r, sub) {
			return i
		}
	}
	return -1
}

var rowTimerRE = regexp.MustCompile(`(\d+\.\d)s$`)

// RowTimer is the seconds shown at the end of the row containing sub
// ("3.8s"); the test fails if there is no such row or it ends in no timer.
func RowTimer(t testing.TB, rows []string, sub string) float64 {
	t.Helper()
	i := RowIndex(rows, sub)
	if i < 0 {
		t.Fatalf("no row with %q:\n%s", sub, strings.Join(rows, "\n"))
	}
	m := rowTimerRE.FindStringSubmatch(rows[i])
	if m == nil {
		t.Fatalf("row %q ends in no timer:\n%s", rows[i], strings.Join(rows, "\n"))
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	return f
}
